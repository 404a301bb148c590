"""One simulator run of a prepared network, in its own process (see simulators.py).

    python benchmarks/sim_workers.py SIMULATOR WORKDIR THREADS

``WORKDIR`` holds ``weights.npz`` (spikeforge's export format,
:func:`spikeforge.export.simulator_export.weights_dict`) and ``inputs.npz`` (``ptr``,
``steps``, ``units``, ``n_steps``: the input spikes of B samples). The run writes
``counts_SIMULATOR.npz`` (spike counts per spiking layer, ``counts_k`` [B, N_k]; spikeforge
also ``counts_spikeforge-float64.npz`` from an untimed float64 pass) and
prints one JSON object: build, compile and run seconds, peak memory. ``run_s`` is the
simulation alone (Brian2 standalone: its binary's main loop, without start-up and I/O,
which are ``binary_wall_s``).

Simulators: ``spikeforge`` (public API, ``torch.no_grad``), ``nest`` (``iaf_psc_exp``
via spikeforge's NEST template, ``local_num_threads``), ``brian2-runtime`` (Cython code
generation, single-threaded) and ``brian2-standalone`` (``cpp_standalone``, OpenMP).
Recurrent connections in NEST get its minimum delay of one step (spikeforge's and
Brian2's are zero), so NEST's spikes of a recurrent layer are only comparable, not equal.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import task as tk  # noqa: E402

REPEATS = 3  # timed spikeforge passes (median); the simulators run once


def _load(workdir: Path) -> tuple[dict, dict]:
    return dict(np.load(workdir / "weights.npz")), dict(np.load(workdir / "inputs.npz"))


def _memory(baseline_mb: float, extra: dict | None = None) -> dict:
    peak = tk.peak_rss_mb()
    return {"peak_rss_mb": peak, "mem_mb": max(peak - baseline_mb, 0.0), **(extra or {})}


def _counts(network) -> dict[str, np.ndarray]:
    return {f"counts{k}": r.events.counts() for k, r in enumerate(network.spike_records())}


def run_spikeforge(workdir: Path, threads: int) -> dict:
    import torch

    import spikeforge.nn as snn
    from spikeforge.events import Events
    from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
    from spikeforge.threads import set_threads

    set_threads(threads)
    weights, inputs = _load(workdir)
    baseline = tk.rss_mb()
    t0 = time.perf_counter()
    n_layers = int(weights["n_layers"])
    layers = tuple(
        LayerSpec(int(weights[f"w{k}"].shape[0]),
                  LIFParams(float(weights[f"tau_mem{k}"]), float(weights[f"tau_syn{k}"]),
                            float(weights[f"threshold{k}"]), spiking=bool(weights[f"spiking{k}"])),
                  recurrent=f"rec{k}" in weights)
        for k in range(n_layers))
    network = snn.SpikingNetwork(NetworkSpec(int(weights["n_inputs"]), layers,
                                             float(weights["dt_ms"]))).eval()
    with torch.no_grad():
        for k, layer in enumerate(network.layers):
            layer.weight.copy_(torch.from_numpy(weights[f"w{k}"]))
            if f"rec{k}" in weights:
                layer.recurrent_weight.copy_(torch.from_numpy(weights[f"rec{k}"]))
    ptr = inputs["ptr"]
    events = Events(len(ptr) - 1, int(inputs["n_steps"]), int(weights["n_inputs"]), ptr,
                    inputs["steps"].astype(np.int32), inputs["units"].astype(np.int32),
                    np.ones(inputs["steps"].size, np.float32))
    build_s = time.perf_counter() - t0
    with torch.no_grad():
        t0 = time.perf_counter()
        network(Events(1, 2, events.n_units, np.array([0, 1]), np.zeros(1, np.int32),
                       np.zeros(1, np.int32), np.ones(1, np.float32)))  # JIT / cache load
        compile_s = time.perf_counter() - t0
        runs = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            network(events)
            runs.append(time.perf_counter() - t0)
    np.savez(workdir / "counts_spikeforge.npz", **_counts(network))
    with torch.no_grad():  # float64 (untimed): the reference for the simulators' float64
        network.double()(events.astype(np.float64))
    np.savez(workdir / "counts_spikeforge-float64.npz", **_counts(network))
    return {"build_s": build_s, "compile_s": compile_s, "run_s": float(np.median(runs)),
            "run_s_all": runs, "threads": threads, **_memory(baseline)}


def _nest_recurrent(nest, weights, info, n_batch: int) -> None:
    """Recurrent connections of spikeforge layers, with NEST's minimum delay (one step)."""
    for k, group in enumerate(info["layers"]):
        if f"rec{k}" not in weights:
            continue
        rec = np.asarray(weights[f"rec{k}"], dtype=np.float64)
        post, pre = np.nonzero(rec)
        ids = np.asarray(group.tolist())
        offsets = np.arange(n_batch)[:, None] * rec.shape[0]
        n = post.size * n_batch
        nest.Connect(ids[(offsets + pre).ravel()], ids[(offsets + post).ravel()],
                     conn_spec="one_to_one",
                     syn_spec={"weight": np.tile(rec[post, pre], n_batch),
                               "delay": np.full(n, info["dt"])})


def run_nest(workdir: Path, threads: int) -> dict:
    from spikeforge.export.templates import nest_model

    nest = nest_model.import_simulator()
    weights, inputs = _load(workdir)
    baseline = tk.rss_mb()
    n_batch, n_steps = len(inputs["ptr"]) - 1, int(inputs["n_steps"])
    t0 = time.perf_counter()
    info, monitors = nest_model.build(weights, inputs["ptr"], inputs["steps"], inputs["units"],
                                      n_steps, threads)
    _nest_recurrent(nest, weights, info, n_batch)
    nest.Prepare()
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nest.Run(info["sim_time"])
    run_s = time.perf_counter() - t0
    nest.Cleanup()
    result = nest_model.collect(weights, info, monitors, n_batch, n_steps)
    np.savez(workdir / "counts_nest.npz", **{k: v for k, v in result.items()
                                              if k.startswith("counts")})
    return {"build_s": build_s, "compile_s": 0.0, "run_s": run_s, "threads": threads,
            **_memory(baseline)}


def run_brian2_runtime(workdir: Path, threads: int) -> dict:
    from spikeforge.export.templates import brian2_model

    b2 = brian2_model.import_simulator()
    weights, inputs = _load(workdir)
    baseline = tk.rss_mb()
    n_batch, n_steps = len(inputs["ptr"]) - 1, int(inputs["n_steps"])
    t0 = time.perf_counter()
    network, monitors = brian2_model.build(weights, inputs["ptr"], inputs["steps"],
                                           inputs["units"], n_steps, target="cython")
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    network.run(0 * b2.ms)  # generates and compiles (or loads cached) Cython code objects
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    network.run(n_steps * network.sim_dt)
    run_s = time.perf_counter() - t0
    result = brian2_model.collect(weights, monitors, n_batch, n_steps)
    np.savez(workdir / "counts_brian2-runtime.npz", **{k: v for k, v in result.items()
                                                        if k.startswith("counts")})
    return {"build_s": build_s, "compile_s": compile_s, "run_s": run_s, "threads": 1,
            **_memory(baseline)}


def run_brian2_standalone(workdir: Path, threads: int) -> dict:
    from spikeforge.export.templates import brian2_model

    b2 = brian2_model.import_simulator()
    weights, inputs = _load(workdir)
    baseline = tk.rss_mb()
    n_batch, n_steps = len(inputs["ptr"]) - 1, int(inputs["n_steps"])
    project = Path(tempfile.mkdtemp(prefix="brian2_standalone_", dir=workdir))
    rss_file = project / "binary_maxrss_kb.txt"
    b2.set_device("cpp_standalone", build_on_run=False, directory=str(project))
    b2.prefs.devices.cpp_standalone.openmp_threads = threads
    b2.prefs.devices.cpp_standalone.run_cmd_unix = ["/usr/bin/time", "-f", "%M", "-o",
                                                    str(rss_file), "./main"]
    t0 = time.perf_counter()
    network, monitors = brian2_model.build(weights, inputs["ptr"], inputs["steps"],
                                           inputs["units"], n_steps)
    network.run(n_steps * network.sim_dt)  # recorded into the project, not yet run
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    b2.device.build(directory=str(project), compile=True, run=False, with_output=False)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    b2.device.run(directory=str(project), with_output=False)
    binary_s = time.perf_counter() - t0  # start-up, reading inputs, writing results
    run_s = float(getattr(b2.device, "_last_run_time", binary_s))  # the simulation loop
    result = brian2_model.collect(weights, monitors, n_batch, n_steps)
    np.savez(workdir / "counts_brian2-standalone.npz", **{k: v for k, v in result.items()
                                                           if k.startswith("counts")})
    binary_mb = int(rss_file.read_text().split()[-1]) * 1024 / 1e6
    return {"build_s": build_s, "compile_s": compile_s, "run_s": run_s, "threads": threads,
            "binary_wall_s": binary_s, **_memory(baseline, {"binary_peak_rss_mb": binary_mb})}


WORKERS = {"spikeforge": run_spikeforge, "nest": run_nest,
           "brian2-runtime": run_brian2_runtime, "brian2-standalone": run_brian2_standalone}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3 or argv[0] not in WORKERS:
        raise SystemExit(f"usage: sim_workers.py {{{','.join(WORKERS)}}} WORKDIR THREADS")
    simulator, workdir, threads = argv[0], Path(argv[1]), int(argv[2])
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    record = {"simulator": simulator, **WORKERS[simulator](workdir, threads)}
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
