"""``delay_order``: a generated task that needs synaptic delays.

Two input channels, A (0) and B (1), each fire exactly one spike. The first of them fires
at a random time in [0, onset_ms]; the other follows after a random gap in
[gap_min_ms, gap_max_ms]. The label is the order: 0 if A fired first, 1 if B did. The
gaps are several times longer than the hidden membrane / synaptic time constants of the
recommended model (configs/delay_order.yaml: tau_mem 5 ms, tau_syn 2.5 ms for hidden and
readout neurons), so when the second spike arrives the first one's trace has decayed to
well under 0.1 %: a feed-forward LIF network without delays cannot tell the orders apart.
With learnable delays a hidden neuron can delay A by d_A and B by d_B so that both
arrive together only for one order (d_A - d_B ~ the gap): a coincidence detector.
The readout loss must not weight time (``train.loss=max`` or ``sum``, not ``sum_exp``:
a decaying time weight would reveal which input came first without any delay).
"""

from __future__ import annotations

import numpy as np

from spikeforge.data.base import DatasetSplits, SpikeDataset

SEED = 20250107
"""Fixed generator seed: the same samples for every run."""


def generate(n_samples: int, dt: float, rng: np.random.Generator, onset_ms: float,
             gap_min_ms: float, gap_max_ms: float) -> tuple[list, np.ndarray]:  # fmt: skip
    """Samples (steps, units) and labels (0: A first, 1: B first), balanced at random."""
    labels = rng.integers(0, 2, n_samples).astype(np.int64)
    first = rng.uniform(0.0, onset_ms, n_samples)
    second = first + rng.uniform(gap_min_ms, gap_max_ms, n_samples)
    samples = []
    for label, t1, t2 in zip(labels, first, second, strict=True):
        times = np.array([t1, t2]) if label == 0 else np.array([t2, t1])  # [t_A, t_B]
        samples.append((np.round(times / dt).astype(np.int64), np.array([0, 1])))
    return samples, labels


def load(dt: float = 1.0, n_train: int = 1000, n_val: int = 200, n_test: int = 400,
         onset_ms: float = 40.0, gap_min_ms: float = 40.0, gap_max_ms: float = 60.0,
         tail_ms: float = 140.0) -> DatasetSplits:  # fmt: skip
    """The three splits (independent draws from one seeded generator).

    Simulated window: ``onset_ms + gap_max_ms + tail_ms`` (240 ms by default), long enough
    for delays up to 80 ms plus the readout's decay."""
    rng = np.random.default_rng(SEED)
    n_steps = int(round((onset_ms + gap_max_ms + tail_ms) / dt))
    splits = []
    for n in (n_train, n_val, n_test):
        samples, labels = generate(n, dt, rng, onset_ms, gap_min_ms, gap_max_ms)
        splits.append(SpikeDataset(samples, labels, 2, 2, n_steps, dt))
    return DatasetSplits("delay_order", *splits)
