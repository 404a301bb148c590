"""mlGeNN 2.4 EventProp (GeNN 5.4 single-threaded CPU backend) on the benchmark task.

The CPU backend supports batch size 1 only, so one "training step" here is ``--batch``
samples (32) trained one at a time: 32 forward/backward passes and 32 Adam updates
(the other implementations make one update per step). Throughput is therefore compared
per sample. The generated C++ is compiled with optimisation (``optimize_code=True``)
in ``benchmarks/.mlgenn-build`` (git-ignored; a folder per configuration so stale
builds are never reused). Network as in every other implementation: mlGeNN's EventProp
defaults (``scale_i``) give V[n+1] = a_m V + (1 - a_m) * tau_syn/dt * (1 - a_s) * I,
the same per-step gain as spikeforge's syn_gain (to 1e-3), reset to 0, no refractory
period; readout ``avg_var`` (time-mean voltage) with sparse categorical cross-entropy.
Hidden spikes are counted with a ``SpikeRecorder(record_counts=True)`` during the timed
steps (small overhead, included in the timing).

usage: benchmarks/.venv-mlgenn/bin/python benchmarks/impl_mlgenn.py --T 100
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import task as tk  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tk.add_common_args(parser)
    parser.add_argument("--build-dir", default=str(HERE / ".mlgenn-build"))
    args = parser.parse_args(argv)
    if args.mode != "train":
        parser.error("mlGeNN is benchmarked in training mode only")
    tk.set_threads(1)
    task = tk.task_from_args(args)

    import importlib.metadata

    import numpy as np
    from ml_genn import Connection, Network, Population
    from ml_genn.callbacks import SpikeRecorder
    from ml_genn.compilers import EventPropCompiler
    from ml_genn.compilers.event_prop_compiler import default_params
    from ml_genn.connectivity import Dense
    from ml_genn.neurons import LeakyIntegrate, LeakyIntegrateFire, SpikeInput
    from ml_genn.optimisers import Adam
    from ml_genn.synapses import Exponential
    from ml_genn.utils.data import preprocess_spikes

    alpha_mem, alpha_syn, _ = tk.decays()
    i_scale = tk.TAU_SYN / tk.DT * (1.0 - alpha_syn)
    scale = tk.weight_scale((1.0 - alpha_mem) * i_scale)
    w = tk.make_weights(task)
    batches = tk.make_batches(task)  # each: (flat spike indices of [32, T, 700], labels)

    def to_spikes(flat: np.ndarray):
        sample, step, unit = tk.unravel(flat, task)
        # A spike in step n reaches the synapse at the end of step n, as in spikeforge.
        return [
            preprocess_spikes(step[sample == b] * tk.DT, unit[sample == b], task.n_inputs)
            for b in range(task.batch)
        ]

    data = [(to_spikes(flat), list(y)) for flat, y in batches]
    max_spikes = max(int(np.bincount(tk.unravel(f, task)[0]).max()) for f, _ in batches)

    network = Network(default_params)
    with network:
        inp = Population(SpikeInput(max_spikes=max_spikes), task.n_inputs)
        hidden = Population(
            LeakyIntegrateFire(v_thresh=tk.THRESHOLD, tau_mem=tk.TAU_MEM, tau_refrac=None),
            task.n_hidden, record_spikes=True,
        )  # fmt: skip
        output = Population(LeakyIntegrate(tau_mem=tk.TAU_MEM, readout="avg_var"),
                            task.n_classes)  # fmt: skip
        # ml_genn Dense weights are [pre, post]; the shared ones are [post, pre].
        Connection(inp, hidden, Dense(w["w_in"].T * scale), Exponential(tk.TAU_SYN))
        Connection(hidden, hidden, Dense(w["w_rec"].T * scale), Exponential(tk.TAU_SYN))
        Connection(hidden, output, Dense(w["w_out"].T * scale), Exponential(tk.TAU_SYN))

    compiler = EventPropCompiler(
        example_timesteps=task.n_steps, losses="sparse_categorical_crossentropy",
        optimiser=Adam(task.lr * scale), batch_size=1, backend="single_threaded_cpu",
        optimize_code=True,
    )  # fmt: skip
    build = Path(args.build_dir) / f"T{task.n_steps}_H{task.n_hidden}_opt"
    build.mkdir(parents=True, exist_ok=True)
    os.chdir(build)  # GeNN writes <name>_CODE into the working directory
    compiled = compiler.compile(network, name="bench")

    conns = list(compiled.connection_populations.values())

    def weights_finite() -> bool:
        for group in conns:
            group.vars["g"].pull_from_device()
            if not np.isfinite(group.vars["g"].values).all():
                return False
        return True

    meter = tk.Meter(task)
    accuracies: list[float] = []
    with compiled:
        meter.start()
        for x, y in data:
            recorder = SpikeRecorder(hidden, key="hidden", record_counts=True)
            start, cpu_start = time.perf_counter(), time.process_time()
            metrics, cb_data = compiled.train(
                {inp: x}, {output: y}, num_epochs=1, shuffle=False, callbacks=[recorder]
            )
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - cpu_start
            n_spikes = float(np.sum(cb_data["hidden"]))
            accuracies.append(float(metrics[output].result))
            meter.record(seconds, tk.rate_hz(n_spikes, task), None, weights_finite(),
                         cpu_seconds=cpu_seconds)  # fmt: skip
    record = meter.result("mlgenn", "train", {
        "peer_version": importlib.metadata.version("ml_genn"),
        "genn_batch_size": 1, "backend": "single_threaded_cpu", "optimize_code": True,
        "lr_effective": task.lr * scale, "threads": 1, "train_accuracy": accuracies,
        "note": f"one step = {task.batch} samples trained one by one (batch 1, "
        f"{task.batch} Adam updates)",
    })  # fmt: skip
    tk.emit(record)
    return record


if __name__ == "__main__":
    main()
