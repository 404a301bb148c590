"""Simulation speed: spikeforge inference against NEST and Brian2 on the same network and
the same input spikes.

Networks (current-based LIF, tau_mem 20 ms, tau_syn 5 ms, threshold 1, dt 1 ms, LI
readout):

- ``digits``: the digits default (64 -> 128 LIF -> 10 LI, default initial weights,
  seed 0) on the 269 test samples of 40 steps;
- ``shd``: the SHD shape 700 -> 256 recurrent LIF -> 20 LI with the training benchmark's
  weights and inputs (benchmarks/task.py: Bernoulli p = 0.015 per step), batch 32,
  T = 1000;
- ``family-N``: 1000 Poisson inputs (10 Hz) -> N LIF with a fixed fan-in of 100 random
  inputs per neuron (weights scaled by :func:`spikeforge.nn.init.calibrate_` to ~10 Hz)
  -> 10 LI, batch 2, T = 1000.

Each (network, simulator) runs in a fresh process (benchmarks/sim_workers.py) with the
same thread count (Brian2's runtime mode is single-threaded). The NEST and Brian2 models
are spikeforge's exporters (``spikeforge.export.templates``); B samples are B
disconnected copies of the network there. Spike counts of every neuron are compared
with spikeforge's before the times are reported (``identical``: fraction of neurons
with the same count as an untimed float64 spikeforge pass, the simulators' precision;
``identical_float32`` against the timed float32 pass; NEST's recurrent connections have
a one-step delay, so for ``shd`` it only agrees approximately). Times: ``build``
(network construction, NEST's Prepare),
``compile`` (Numba cache load / Cython / C++ compilation), ``run`` (the simulation; for
Brian2 standalone its binary's main loop, without start-up and file I/O);
``s/sim-s`` is run seconds per simulated second of the whole batch. Memory: peak RSS of
the worker process (Brian2 standalone: of its compiled binary).

    python benchmarks/simulators.py [--nets digits,shd,family-1000,family-10000]
        [--simulators spikeforge,nest,brian2-runtime,brian2-standalone] [--threads 2]
        [--out benchmarks/results/simulators]

Writes ``simulators.jsonl`` and ``simulators.md`` under ``--out`` and prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import task as tk  # noqa: E402

SIMULATORS = ("spikeforge", "nest", "brian2-runtime", "brian2-standalone")
FAN_IN = 100
FAMILY_INPUTS = 1000
FAMILY_P = 0.01  # input spike probability per 1 ms step (10 Hz)


def _network(spec, seed: int = 0):
    import torch

    import spikeforge.nn as snn

    torch.manual_seed(seed)
    return snn.SpikingNetwork(spec).eval()


def digits():
    """(network, input Events) of the digits default on its test set."""
    from spikeforge.data import iterate_batches, load_dataset
    from spikeforge.experiments.config import load_config

    config = load_config(None, {})
    test = load_dataset(config.data.name, config.data.dt).test
    spec = config.model.network_spec(test.n_inputs, test.n_classes, config.data.dt, False)
    events, _ = next(iterate_batches(test, len(test), False))
    return _network(spec), events


def shd():
    """(network, input Events) of the SHD-shape training benchmark at T = 1000."""
    import torch

    from spikeforge.events import Events
    from spikeforge.model import LayerSpec, LIFParams, NetworkSpec

    task = tk.Task(n_steps=1000, batch=32)
    spec = NetworkSpec(tk.N_INPUTS, (
        LayerSpec(tk.N_HIDDEN, LIFParams(tk.TAU_MEM, tk.TAU_SYN, tk.THRESHOLD),
                  recurrent=True),
        LayerSpec(tk.N_CLASSES, LIFParams(tk.TAU_MEM, tk.TAU_SYN, spiking=False))), tk.DT)
    network = _network(spec)
    weights = tk.make_weights(task)
    with torch.no_grad():
        network.layers[0].weight.copy_(torch.from_numpy(weights["w_in"]))
        network.layers[0].recurrent_weight.copy_(torch.from_numpy(weights["w_rec"]))
        network.layers[1].weight.copy_(torch.from_numpy(weights["w_out"]))
    return network, Events.from_dense(tk.make_inputs(task))


def family(n_neurons: int, n_batch: int = 2, n_steps: int = 1000):
    """(network, input Events): 1000 inputs -> ``n_neurons`` LIF (fixed fan-in) -> 10 LI."""
    import torch

    from spikeforge.events import Events
    from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
    from spikeforge.nn.init import calibrate_

    spec = NetworkSpec(FAMILY_INPUTS, (
        LayerSpec(n_neurons, LIFParams(tk.TAU_MEM, tk.TAU_SYN, tk.THRESHOLD)),
        LayerSpec(10, LIFParams(tk.TAU_MEM, tk.TAU_SYN, spiking=False))), tk.DT)
    network = _network(spec)
    rng = np.random.default_rng(n_neurons)
    w = np.zeros((n_neurons, FAMILY_INPUTS), np.float32)
    pre = np.argsort(rng.random((n_neurons, FAMILY_INPUTS)), axis=1)[:, :FAN_IN]
    w[np.arange(n_neurons)[:, None], pre] = rng.normal(1.0, 0.5, (n_neurons, FAN_IN))
    x = (rng.random((n_batch, n_steps, FAMILY_INPUTS)) < FAMILY_P).astype(np.float32)
    events = Events.from_dense(x)
    with torch.no_grad():
        network.layers[0].weight.copy_(torch.from_numpy(w))
    calibrate_(network, Events.from_dense(x[:1, :300]), target_hz=10.0, mode="scale")
    return network, events


def build(name: str):
    """(network, input Events) of network ``name`` (digits, shd or family-N)."""
    if name == "digits":
        return digits()
    if name == "shd":
        return shd()
    if name.startswith("family-") and name[7:].isdigit():
        return family(int(name[7:]))
    raise SystemExit(f"unknown network {name!r}; use digits, shd or family-N")


def prepare(name: str, network, events, workdir: Path) -> dict:
    """Write ``weights.npz`` and ``inputs.npz`` into ``workdir``; the network's summary."""
    from spikeforge.export.network_io import LoadedModel
    from spikeforge.export.simulator_export import weights_dict

    weights = weights_dict(LoadedModel(network, "sum"))
    np.savez(workdir / "weights.npz", **weights)
    np.savez(workdir / "inputs.npz", ptr=events.ptr, steps=events.step, units=events.unit,
             n_steps=events.n_steps)
    n_layers = int(weights["n_layers"])
    neurons = sum(int(weights[f"w{k}"].shape[0]) for k in range(n_layers))
    synapses = sum(int(np.count_nonzero(weights[key])) for key in weights
                   if key.startswith(("w", "rec")) and key[-1].isdigit())
    return {"net": name, "neurons": neurons, "synapses": synapses, "batch": events.n_batch,
            "n_steps": events.n_steps, "dt_ms": float(weights["dt_ms"]),
            "input_spikes": events.n_events}


def _flat_counts(path: Path) -> np.ndarray:
    counts = np.load(path)
    return np.concatenate([counts[k].ravel() for k in sorted(counts.files)])


def _agreement(workdir: Path, simulator: str) -> dict:
    """Spike counts of ``simulator`` against spikeforge's float64 pass (``identical``:
    fraction of neurons with equal counts) and its timed float32 pass."""
    ref = _flat_counts(workdir / "counts_spikeforge-float64.npz")
    ref32 = _flat_counts(workdir / "counts_spikeforge.npz")
    other = _flat_counts(workdir / f"counts_{simulator}.npz")
    corr = (float(np.corrcoef(ref, other)[0, 1]) if ref.std() > 0 and other.std() > 0
            else float("nan"))
    return {"spikes": int(other.sum()), "spikes_spikeforge_float64": int(ref.sum()),
            "identical": float(np.mean(ref == other)),
            "identical_float32": float(np.mean(ref32 == other)), "count_correlation": corr}


def run_one(simulator: str, workdir: Path, threads: int, timeout: float) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, str(HERE / "sim_workers.py"), simulator,
                           str(workdir), str(threads)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if proc.returncode != 0:
        return {"simulator": simulator, "error": proc.stderr.strip().splitlines()[-1:]}
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**record, **_agreement(workdir, simulator)}


def _row(record: dict, base: dict | None) -> str:
    if "error" in record:
        return f"| {record['net']} | {record['simulator']} | failed: {record['error']} |"
    sim_s = record["n_steps"] * record["dt_ms"] * 1e-3
    ratio = record["run_s"] / base["run_s"] if base and "run_s" in base else float("nan")
    memory = record.get("binary_peak_rss_mb", record["peak_rss_mb"])
    return (f"| {record['net']} | {record['simulator']} | {record['threads']} "
            f"| {record['build_s']:.2f} | {record['compile_s']:.2f} | {record['run_s']:.3f} "
            f"| {record['run_s'] / sim_s:.3g} | {record['batch'] / record['run_s']:.3g} "
            f"| {memory:.0f} | {record['spikes']} | {record['identical']:.4f} "
            f"| {ratio:.1f} |")


HEADER = ("| network | simulator | threads | build s | compile s | run s | s / sim-s "
          "| samples/s | peak MB | spikes | identical | run / spikeforge |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="digits,shd,family-1000,family-10000")
    parser.add_argument("--simulators", default=",".join(SIMULATORS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0, help="s per run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "simulators")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    simulators = args.simulators.split(",")
    if simulators[0] != "spikeforge":
        simulators = ["spikeforge", *[s for s in simulators if s != "spikeforge"]]
    meta = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "threads": args.threads,
            "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "command": " ".join(sys.argv)}
    records, lines = [meta], [HEADER]
    print(json.dumps(meta), flush=True)
    for name in args.nets.split(","):
        with tempfile.TemporaryDirectory(prefix=f"sim_{name}_") as tmp:
            workdir = Path(tmp)
            described = prepare(name, *build(name), workdir)
            base = None
            for simulator in simulators:
                record = {**described, **run_one(simulator, workdir, args.threads,
                                                  args.timeout)}
                record["loadavg_1min"] = os.getloadavg()[0]
                base = record if simulator == "spikeforge" else base
                records.append(record)
                lines.append(_row(record, base))
                print(json.dumps(record), flush=True)
    (args.out / "simulators.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (args.out / "simulators.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
