"""Training memory against sequence length: e-prop vs EventProp vs BPTT.

One training step (forward + gradients) of the SHD-shaped network 700 -> 256 recurrent
LIF -> 20 LI, batch 32, on inputs with a fixed number of events per sample spread over
T steps (so the input's size does not change with T), for each method and T. Each
(method, T) runs in a fresh process: after building the network and input and a warm-up
step at T = 20 (compilation), it records the resident set size, runs the step and
reads the peak RSS (``ru_maxrss``). ``step_mb`` = peak - before is the memory the
training step itself needed.

    python benchmarks/eprop_memory.py                      # T = 100, 1000, 4000
    python benchmarks/eprop_memory.py --steps 100 1000 --methods eprop bptt

Output: one JSON object per line per (method, T), then a summary line
``{"summary": {method: {"step_mb": [...], "peak_ratio": last / first}}}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def batch(n_batch: int, n_steps: int, n_inputs: int, events_per_sample: int, seed: int):
    import numpy as np

    from spikeforge.events import Events

    rng = np.random.default_rng(seed)
    samples = [(np.sort(rng.integers(0, n_steps, events_per_sample)),
                rng.integers(0, n_inputs, events_per_sample)) for _ in range(n_batch)]
    return Events.from_lists(samples, n_steps, n_inputs), np.arange(n_batch) % 20


def worker(method: str, n_steps: int, args) -> dict:
    import torch

    from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
    from spikeforge.nn import build_network
    from spikeforge.train.eprop import EpropLearner, EpropSettings
    from spikeforge.train.losses import readout_loss

    torch.manual_seed(0)
    spec = NetworkSpec(n_inputs=args.inputs, dt=1.0, layers=(
        LayerSpec(size=args.hidden, neuron=LIFParams(), recurrent=True, weight_mean=0.5),
        LayerSpec(size=20, neuron=LIFParams(spiking=False), weight_std=5.0)))
    network = build_network(spec, "bptt" if method == "bptt" else "eventprop")
    learner = EpropLearner(network, EpropSettings()) if method == "eprop" else None

    def step(events, labels):
        labels = torch.from_numpy(labels)
        if learner is not None:
            return learner.step(events, labels)[0]
        loss = readout_loss(network(events), labels, "sum")
        loss.backward()
        return loss

    step(*batch(args.batch, 20, args.inputs, 200, 1))      # compile / warm up
    events, labels = batch(args.batch, n_steps, args.inputs, args.events, 2)
    before = rss_mb()
    start = time.perf_counter()
    loss = float(step(events, labels))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "T": n_steps, "batch": args.batch, "hidden": args.hidden,
            "inputs": args.inputs, "events_per_sample": args.events,
            "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
            "step_mb": round(peak - before, 1), "step_seconds": round(seconds, 2),
            "loss": loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--methods", nargs="+", default=["eprop", "eventprop", "bptt"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--inputs", type=int, default=700)
    parser.add_argument("--events", type=int, default=5000, help="input events per sample")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args)))
        return
    summary: dict = {}
    for method in args.methods:
        for n_steps in args.steps:
            options = ["--batch", str(args.batch), "--hidden", str(args.hidden),
                       "--inputs", str(args.inputs), "--events", str(args.events)]
            done = subprocess.run([sys.executable, __file__, "--worker", method, str(n_steps),
                                   *options], capture_output=True, text=True)
            if done.returncode != 0:
                row = {"method": method, "T": n_steps, "error": done.stderr.strip()[-300:]}
            else:
                row = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            entry = summary.setdefault(method, {"T": [], "step_mb": [], "peak_rss_mb": []})
            if "error" not in row:
                entry["T"].append(n_steps)
                entry["step_mb"].append(row["step_mb"])
                entry["peak_rss_mb"].append(row["peak_rss_mb"])
    for entry in summary.values():
        peaks = entry["peak_rss_mb"]
        entry["peak_ratio"] = round(peaks[-1] / peaks[0], 3) if peaks else None
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
