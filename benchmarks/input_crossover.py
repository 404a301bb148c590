"""Where the dense (GEMM) input formulation beats the event scatter.

Times one LIF layer's forward + EventProp backward (700 -> 256 recurrent, batch 32,
T steps) for Bernoulli input at several densities, fed once as events and once as the
dense array, and prints JSON lines plus the crossover density. CPU time of the process
is used (robust on a shared machine); run with NUMBA_NUM_THREADS / OMP_NUM_THREADS set
to the thread count of interest.

    python benchmarks/input_crossover.py [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from spikeforge.engine import Events
from spikeforge.engine import layers as engine
from spikeforge.model import LIFParams


def _cost(inputs, w_in, w_rec, neurons, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        t0 = time.process_time()
        spikes = engine.lif_forward(inputs, w_in, w_rec, neurons)
        dldt = np.full(spikes.n_events, 0.01, dtype=w_in.dtype)
        engine.lif_backward(inputs, spikes, w_in, w_rec, neurons, dldt, False, False)
        times.append(time.process_time() - t0)
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_in, n_out, batch = 700, 256, 32
    neurons = engine.NeuronArrays.from_params(LIFParams(20.0, 5.0, 1.0), n_out, 1.0,
                                              np.float32)
    w_rec = rng.normal(0, 0.5 / np.sqrt(n_out), (n_out, n_out)).astype(np.float32)
    crossover = None
    for density in (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2, 0.4):
        x = (rng.random((batch, args.steps, n_in)) < density).astype(np.float32)
        # keep the hidden rate moderate: scale the mean drive with 1 / density
        w_in = rng.normal(0.4 / (density * n_in), 1.0 / np.sqrt(n_in), (n_in, n_out))
        w_in = w_in.astype(np.float32)
        events = _cost(Events.from_dense(x), w_in, w_rec, neurons, args.repeats)
        dense = _cost(x, w_in, w_rec, neurons, args.repeats)
        if crossover is None and dense < events:
            crossover = density
        print(json.dumps({"density": density, "event_s": round(events, 5),
                          "dense_s": round(dense, 5), "dense_over_event": dense / events}))
    print(json.dumps({"crossover_density": crossover}))


if __name__ == "__main__":
    main()
