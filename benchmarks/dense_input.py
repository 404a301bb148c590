"""Dense input -> events: the compiled ``Events.from_dense`` against the NumPy reference,
and the public-API training step fed a dense tensor against the same step fed events.

Conversion: Bernoulli spikes ``[batch, T, 700]`` (float32) at several densities; median
wall and CPU seconds of ``Events.from_dense`` (Numba, parallel over rows) and
``Events.from_dense_reference`` (``numpy.nonzero``), and whether they are identical.
Training step (``--step``): ``snn.LIF(700, 256, recurrent=True) -> snn.LI(256, 20)``
with the shared benchmark weights (benchmarks/task.py), Adam lr 1e-3, cross-entropy on
the time-mean readout voltage; the input given as the dense tensor (README example) or
as ``snn.event_input(Events)`` (native path); median of ``--repeats`` steps after one
warm-up. One JSON object per line on stdout.

    python benchmarks/dense_input.py [--T 100,1000] [--batch 32] [--repeats 7] [--step]
                                     [--no-conversion]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import task as tk  # noqa: E402

DENSITIES = (0.005, 0.015, 0.05, 0.2)


def _median_times(fn, repeats: int) -> tuple[float, float, object]:
    """(median wall s, median CPU s, last result) of ``repeats`` calls after one warm-up."""
    result, walls, cpus = fn(), [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus)), result


def conversion_rows(steps: list[int], batch: int, repeats: int) -> list[dict]:
    from spikeforge.events import Events

    rows = []
    for n_steps in steps:
        for density in DENSITIES:
            rng = np.random.default_rng([n_steps, int(density * 1e4)])
            x = (rng.random((batch, n_steps, tk.N_INPUTS), dtype=np.float32) < density)
            x = x.astype(np.float32)
            fast_s, fast_cpu, fast = _median_times(lambda x=x: Events.from_dense(x), repeats)
            ref_s, ref_cpu, ref = _median_times(
                lambda x=x: Events.from_dense_reference(x), repeats)
            identical = all(np.array_equal(getattr(fast, f), getattr(ref, f))
                            for f in ("ptr", "step", "unit", "value"))
            rows.append({"bench": "from_dense", "T": n_steps, "batch": batch,
                         "density": density, "n_events": fast.n_events,
                         "compiled_s": fast_s, "compiled_cpu_s": fast_cpu,
                         "reference_s": ref_s, "reference_cpu_s": ref_cpu,
                         "speedup": ref_s / fast_s, "identical": identical})
    return rows


def _train_step_rows(x, labels, weights, path: str, repeats: int) -> dict:
    """Time Adam steps of the README network on dense ``x`` or on its events."""
    import torch

    import spikeforge.nn as snn
    from spikeforge.events import Events

    torch.manual_seed(0)
    hidden = snn.LIF(tk.N_INPUTS, tk.N_HIDDEN, recurrent=True)
    readout = snn.LI(tk.N_HIDDEN, tk.N_CLASSES)
    with torch.no_grad():
        hidden.weight.copy_(torch.from_numpy(weights["w_in"]))
        hidden.recurrent_weight.copy_(torch.from_numpy(weights["w_rec"]))
        readout.weight.copy_(torch.from_numpy(weights["w_out"]))
    model = torch.nn.Sequential(hidden, readout)
    optimizer = torch.optim.Adam(model.parameters(), lr=tk.LR)
    events = Events.from_dense(x.numpy())

    def train_step() -> int:
        optimizer.zero_grad()
        inputs = x if path == "dense" else snn.event_input(events)
        loss = torch.nn.functional.cross_entropy(model(inputs).mean(dim=1), labels)
        loss.backward()
        optimizer.step()
        return hidden.last_record.events.n_events

    wall, cpu, n_spikes = _median_times(train_step, repeats)
    batch, n_steps = x.shape[0], x.shape[1]
    return {"bench": "train_step", "path": path, "T": n_steps, "batch": batch,
            "s_per_step": wall, "cpu_s_per_step": cpu,
            "hidden_rate_hz": n_spikes / (batch * tk.N_HIDDEN * n_steps * 1e-3)}


def step_rows(steps: list[int], batch: int, repeats: int) -> list[dict]:
    import torch

    rows = []
    for n_steps in steps:
        task = tk.Task(n_steps=n_steps, batch=batch)
        weights = tk.make_weights(task)
        x = torch.from_numpy(tk.make_inputs(task))
        labels = torch.from_numpy(tk.make_labels(task))
        dense, native = (_train_step_rows(x, labels, weights, path, repeats)
                         for path in ("dense", "events"))
        rows += [dense, native, {"bench": "train_step_ratio", "T": n_steps,
                                 "dense_over_events": dense["s_per_step"]
                                 / native["s_per_step"]}]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", default="100,1000", help="comma-separated step counts")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--step", action="store_true", help="also time training steps")
    parser.add_argument("--no-conversion", action="store_true",
                        help="skip the conversion timings (e.g. on a tree without "
                             "from_dense_reference, for a before/after training step)")
    args = parser.parse_args(argv)
    steps = [int(t) for t in args.T.split(",")]
    import numba

    print(json.dumps({"bench": "meta", "numba_threads": numba.get_num_threads(),
                      "time": time.strftime("%Y-%m-%d %H:%M:%S")}), flush=True)
    if not args.no_conversion:
        for row in conversion_rows(steps, args.batch, args.repeats):
            print(json.dumps(row), flush=True)
    if args.step:
        for row in step_rows(steps, args.batch, args.repeats):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
