"""Scaling curves of spikeforge training and inference, and a fitted cost model.

Base configuration: the SHD shape (700 Bernoulli inputs -> H recurrent LIF -> 20 LI,
tau_mem 20 ms, tau_syn 5 ms, dt 1 ms), H = 256, batch 32, T = 500 steps, input density
0.015 per step, all cores; input handed over as sparse Events; before each point the
hidden input weights are calibrated (:func:`spikeforge.nn.init.calibrate_`) to 10 Hz on
4 samples, so activity stays comparable while one parameter moves:

    threads 1 .. all cores, batch 1 .. 256, hidden 128 .. 4096, density 0.005 .. 0.2,
    T 100 .. 4000.

Each point times inference (forward under ``torch.no_grad``) and one training step
(forward + EventProp backward + Adam), median of ``--repeats`` after a warm-up, and
counts the work: synaptic events ``S`` = input spikes x H + hidden spikes x (H + 20)
(one weight row per event) and neuron updates ``N`` = batch x (H + 20) x T. The cost
model ``time = a S + b N`` is fitted per mode (non-negative least squares on the relative
error, points at the base thread count) and each point's relative distance from it is reported.
Writes ``scaling.json`` and ``scaling.png`` under ``--out``.

    python benchmarks/scaling.py [--quick] [--repeats 3] [--device cpu|cuda] [--energy]
        [--out benchmarks/results]

``--device cuda`` runs the layers on the GPU (dense input tensor on the device: the
torch path); ``--energy`` adds joules per pass / step from RAPL (CPU package) or NVML
(GPU board) where readable (:mod:`spikeforge.energy.measure`: whole-package counters,
so idle power and other processes are included).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

N_IN, N_OUT = 700, 20
SWEEPS = {
    "threads": [1, 2, 4, 8, 16, 32, 64, 128],
    "batch": [1, 4, 16, 64, 256],
    "hidden": [128, 256, 512, 1024, 2048, 4096],
    "density": [0.005, 0.015, 0.05, 0.1, 0.2],
    "steps": [100, 500, 1000, 2000, 4000],
}
QUICK = {"threads": [1, 2], "batch": [1, 8, 32], "hidden": [64, 128, 256],
         "density": [0.005, 0.02, 0.08], "steps": [50, 100, 200]}


@dataclass(frozen=True)
class Point:
    threads: int
    batch: int = 32
    hidden: int = 256
    density: float = 0.015
    steps: int = 500


def _model(point: Point, x_events, seed: int = 0):
    import torch

    import spikeforge.nn as snn
    from spikeforge.nn.init import calibrate_

    torch.manual_seed(seed)
    hidden = snn.LIF(N_IN, point.hidden, recurrent=True, dense_output=False)
    readout = snn.LI(point.hidden, N_OUT)
    model = torch.nn.Sequential(hidden, readout)
    probe = _subset(x_events, 4, min(point.steps, 300))
    calibrate_(model, snn.event_input(probe), target_hz=10.0, tol=0.15)
    return model, hidden


def _subset(events, n_batch: int, n_steps: int):
    from spikeforge.events import Events

    n_batch = min(n_batch, events.n_batch)
    end = int(events.ptr[n_batch])
    keep = events.step[:end] < n_steps
    sample = events.sample_index()[:end][keep]
    ptr = np.zeros(n_batch + 1, np.int64)
    np.cumsum(np.bincount(sample, minlength=n_batch), out=ptr[1:])
    return Events(n_batch, n_steps, events.n_units, ptr, events.step[:end][keep],
                  events.unit[:end][keep], events.value[:end][keep])


def _energy_counter(device: str):
    """RAPL (CPU) or NVML (CUDA) energy counter, or None with the reason printed once."""
    from spikeforge.energy.measure import nvml_counter, rapl_counter

    counter = nvml_counter() if device.startswith("cuda") else rapl_counter()
    if isinstance(counter, str) or counter is None:
        print(json.dumps({"energy": "not measured", "reason": counter}), flush=True)
        return None
    return counter


def measure(point: Point, repeats: int, device: str = "cpu", counter=None) -> list[dict]:
    import torch

    import spikeforge.nn as snn
    from spikeforge.energy.measure import measure as timed
    from spikeforge.events import Events
    from spikeforge.nn import record_of
    from spikeforge.threads import set_threads

    rng = np.random.default_rng([point.batch, point.steps, int(point.density * 1e4)])
    x = rng.random((point.batch, point.steps, N_IN), dtype=np.float32) < point.density
    x = x.astype(np.float32)
    events = Events.from_dense(x)
    labels = torch.from_numpy(rng.integers(0, N_OUT, point.batch)).to(device)
    set_threads(min(point.threads, os.cpu_count() or 1))
    model, hidden = _model(point, events)
    model.to(device)
    if device == "cpu":  # sparse events (the native CPU input); the device path: dense
        del x

        def inputs():
            return snn.event_input(events)
    else:
        dense = torch.from_numpy(x).to(device)
        del x

        def inputs():
            return dense
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    seen = {}  # the spike record of the hidden layer's last output (CPU or device path)
    hidden.register_forward_hook(lambda m, i, out: seen.update(record=record_of(out)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def infer():
        with torch.no_grad():
            model(inputs())

    def train():
        optimizer.zero_grad()
        out = model(inputs()).mean(dim=1)
        torch.nn.functional.cross_entropy(out, labels).backward()
        optimizer.step()

    rows = []
    for mode, fn in (("inference", infer), ("training", train)):
        result = timed(fn, repeats, counter, sync)
        spikes = int(seen["record"].events.n_events)
        rows.append({**asdict(point), "mode": mode, "device": device,
                     "time_s": result.seconds, "joules": result.joules,
                     "input_spikes": events.n_events, "hidden_spikes": spikes,
                     "hidden_rate_hz": spikes / (point.batch * point.hidden * point.steps
                                                 * 1e-3),
                     "synaptic_events": events.n_events * point.hidden
                     + spikes * (point.hidden + N_OUT),
                     "neuron_steps": point.batch * (point.hidden + N_OUT) * point.steps})
    return rows


def fit(rows: list[dict]) -> dict:
    """a (s per synaptic event), b (s per neuron update) minimising the relative error."""
    s = np.array([r["synaptic_events"] for r in rows], float)
    n = np.array([r["neuron_steps"] for r in rows], float)
    t = np.array([r["time_s"] for r in rows], float)
    from scipy.optimize import nnls

    design = np.stack([s / t, n / t], axis=1)  # weight each point by 1 / t
    scale = design.max(axis=0)  # condition the columns (S and N differ by decades)
    coef, _ = nnls(design / scale, np.ones_like(t))
    a, b = coef / scale
    return {"a_s_per_synaptic_event": float(a), "b_s_per_neuron_step": float(b)}


def plot(rows: list[dict], models: dict, sweeps: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweeps), figsize=(4 * len(sweeps), 3.6))
    for ax, dim in zip(axes, sweeps, strict=True):
        for mode, colour in (("inference", "tab:blue"), ("training", "tab:red")):
            pts = sorted((r for r in rows if r["sweep"] == dim and r["mode"] == mode),
                         key=lambda r: r[dim])
            if not pts:
                continue
            xs = [r[dim] for r in pts]
            ax.loglog(xs, [r["time_s"] for r in pts], "o-", color=colour, label=mode)
            ax.loglog(xs, [r["predicted_s"] for r in pts], "--", color=colour, alpha=0.6,
                      label=f"{mode} model")
        ax.set_xlabel(dim)
        ax.set_ylabel("s per pass / step")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    a_i = models["inference"]["a_s_per_synaptic_event"]
    a_t = models["training"]["a_s_per_synaptic_event"]
    fig.suptitle(f"spikeforge scaling (a = {a_i:.2e} / {a_t:.2e} s per synaptic event, "
                 f"inference / training)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small ranges (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:k] (dense input)")
    parser.add_argument("--energy", action="store_true",
                        help="also joules per pass / step (RAPL on cpu, NVML on cuda)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent
                        / "results")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    sweeps = dict(QUICK if args.quick else SWEEPS)
    sweeps["threads"] = [t for t in sweeps["threads"] if t <= cores] or [1]
    base = Point(threads=cores) if not args.quick else Point(cores, 8, 128, 0.02, 100)
    counter = _energy_counter(args.device) if args.energy else None
    rows = []
    for dim, values in sweeps.items():
        for value in values:
            for row in measure(replace(base, **{dim: value}), args.repeats, args.device,
                               counter):
                row["sweep"] = dim
                rows.append(row)
                print(json.dumps(row), flush=True)
    models = {}
    for mode in ("inference", "training"):
        fitted = [r for r in rows if r["mode"] == mode and r["threads"] == base.threads]
        models[mode] = fit(fitted)
    for r in rows:
        m = models[r["mode"]]
        r["predicted_s"] = (m["a_s_per_synaptic_event"] * r["synaptic_events"]
                            + m["b_s_per_neuron_step"] * r["neuron_steps"])
        r["relative_error"] = (r["time_s"] - r["predicted_s"]) / r["predicted_s"]
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": cores,
              "device": args.device, "base": asdict(base), "models": models, "points": rows}
    (args.out / "scaling.json").write_text(json.dumps(result, indent=1))
    plot(rows, models, sweeps, args.out / "scaling.png")
    print(json.dumps({"models": models, "max_abs_relative_error": max(
        abs(r["relative_error"]) for r in rows if r["threads"] == base.threads)}))


if __name__ == "__main__":
    main()
