"""The training / inference loop shared by every PyTorch-based implementation.

Each implementation supplies a model (torch.nn.Module holding all trainable weights), the
input format it takes (``"events"``: spikeforge ``Events``, all batches built before the
first step; ``"dense_tb"`` / ``"dense_bt"``: a dense float32 ``[T, B, C]`` /
``[B, T, C]`` tensor, one preallocated buffer refilled in place before each step, outside
the timed region and without allocating),
and a ``forward`` function returning ``(mean readout voltage [B, n_classes], hidden spike
count)``. No dense batch is kept resident besides that one buffer.

One training step = zero_grad + forward + cross-entropy on the time-mean readout +
backward + Adam step; that is what is timed. Loss, firing rate and gradient finiteness
are read outside the timed region.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from task import Meter, Task, make_batches, make_inputs, rate_hz, unravel

Forward = Callable[[Any], tuple[torch.Tensor, torch.Tensor | float]]


def _grads_finite(model: torch.nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())


class Inputs:
    """Batches in the implementation's input format; see the module docstring."""

    def __init__(self, task: Task, fmt: str) -> None:
        self.task, self.fmt = task, fmt
        raw = make_batches(task)
        self.labels = [torch.from_numpy(y) for _, y in raw]
        if fmt == "events":
            self.events = [self._events(flat) for flat, _ in raw]
        elif fmt in ("dense_tb", "dense_bt"):
            n_b, n_t, n_c = task.batch, task.n_steps, task.n_inputs
            time_first = fmt == "dense_tb"
            self.buffer = torch.zeros((n_t, n_b, n_c) if time_first else (n_b, n_t, n_c))
            self.flat_index = []
            for flat, _ in raw:
                sample, step, channel = unravel(flat, task)
                row = step * n_b + sample if time_first else sample * n_t + step
                self.flat_index.append(torch.from_numpy(row * n_c + channel))
        else:
            raise ValueError(f"unknown input format {fmt!r}")

    def _events(self, flat):
        from spikeforge.engine import Events

        task = self.task
        sample, step, channel = unravel(flat, task)  # C order: sorted by (sample, step)
        ptr = np.zeros(task.batch + 1, dtype=np.int64)
        np.cumsum(np.bincount(sample, minlength=task.batch), out=ptr[1:])
        return Events(
            n_batch=task.batch, n_steps=task.n_steps, n_units=task.n_inputs, ptr=ptr,
            step=step.astype(np.int32), unit=channel.astype(np.int32),
            value=np.ones(flat.shape[0], dtype=np.float32),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, index: int):
        """The inputs of batch ``index`` (for dense_tb: the refilled shared buffer)."""
        if self.fmt == "events":
            return self.events[index]
        self.buffer.zero_()
        self.buffer.view(-1).index_fill_(0, self.flat_index[index], 1.0)
        return self.buffer

    def small(self):
        """1 sample x 10 steps of the first batch, for the pre-warm call."""
        task = self.task
        n = min(task.n_steps, 10)
        x = np.zeros((1, n, task.n_inputs), dtype=np.float32)
        sample, step, channel = unravel(np.flatnonzero(make_inputs(task, 0)), task)
        keep = (sample == 0) & (step < n)
        x[0, step[keep], channel[keep]] = 1.0
        if self.fmt == "events":
            from spikeforge.engine import Events

            return Events.from_dense(x)
        if self.fmt == "dense_bt":
            return torch.from_numpy(x)
        return torch.from_numpy(x).transpose(0, 1).contiguous()


def _prewarm(model, forward, small, mode: str) -> None:
    """One tiny forward (+ backward) on 1 sample x 10 steps before the baseline RSS is
    taken, so one-off costs (Numba JIT compilation or cache loading, torch lazy
    initialisation) count as set-up, like imports, not as training memory."""
    if mode == "train":
        logits, _ = forward(small)
        logits.sum().backward()
        model.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            forward(small)


def run(
    impl: str,
    task: Task,
    model: torch.nn.Module,
    input_format: str,
    forward: Forward,
    mode: str = "train",
    threads: int = 2,
    extra: dict | None = None,
    lr: float | None = None,
) -> dict:
    """Run warm-up + timed steps and return the JSON record.

    ``lr``: Adam learning rate for this parameterisation (default ``task.lr``); an
    implementation whose weights are the shared ones times a factor uses ``task.lr`` times
    that factor, so Adam's updates are the same relative to the weights.
    """
    torch.set_num_threads(threads)
    batches = Inputs(task, input_format)
    _prewarm(model, forward, batches.small(), mode)
    optimizer = torch.optim.Adam(model.parameters(), lr=task.lr if lr is None else lr)
    meter = Meter(task)
    meter.start()
    for index in range(len(batches)):
        inputs, labels = batches.get(index), batches.labels[index]
        if mode == "train":
            start, cpu_start = time.perf_counter(), time.process_time()
            optimizer.zero_grad(set_to_none=True)
            logits, n_spikes = forward(inputs)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - cpu_start
            finite = _grads_finite(model)
        else:
            start, cpu_start = time.perf_counter(), time.process_time()
            with torch.no_grad():
                logits, n_spikes = forward(inputs)
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - cpu_start
            with torch.no_grad():
                loss = torch.nn.functional.cross_entropy(logits, labels)
            finite = True
        value = float(loss.detach())
        meter.record(
            seconds, rate_hz(float(n_spikes), task), value, finite, cpu_seconds=cpu_seconds
        )
    record = meter.result(impl, mode, extra)
    record["lr_effective"] = task.lr if lr is None else lr
    record["threads"] = threads
    record["torch"] = torch.__version__
    return record
