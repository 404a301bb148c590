"""The training / inference loop shared by every PyTorch-based implementation.

Each implementation supplies a model (torch.nn.Module holding all trainable weights), a
``prepare`` function turning one task batch (NumPy inputs [B, T, C]) into its native
input format (done before timing), and a ``forward`` function returning
``(mean readout voltage [B, n_classes], hidden spike count)``.

One training step = zero_grad + forward + cross-entropy on the time-mean readout +
backward + Adam step; that is what is timed. Loss, firing rate and gradient finiteness
are read outside the timed region.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from task import Meter, Task, make_batches, rate_hz

Forward = Callable[[Any], tuple[torch.Tensor, torch.Tensor | float]]


def _grads_finite(model: torch.nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())


def _prewarm(model, prepare, forward, x, mode: str) -> None:
    """One tiny forward (+ backward) on 1 sample x 10 steps before the baseline RSS is
    taken, so one-off costs (Numba JIT compilation or cache loading, torch lazy
    initialisation) count as set-up, like imports, not as training memory."""
    small = prepare(x[:1, : min(x.shape[1], 10)].copy())
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
    prepare: Callable[[Any], Any],
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
    raw = make_batches(task)
    batches = [(prepare(x), torch.from_numpy(y)) for x, y in raw]
    _prewarm(model, prepare, forward, raw[0][0], mode)
    optimizer = torch.optim.Adam(model.parameters(), lr=task.lr if lr is None else lr)
    meter = Meter(task)
    meter.start()
    for inputs, labels in batches:
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
