"""The Yin-Yang task (Kriener et al. 2021): 3 classes in the plane, generated and seeded.

Inputs are (x, y, 1-x, 1-y) as spike times plus a bias spike (5 channels).
"""

from __future__ import annotations

import numpy as np

from spikeforge.data.base import DatasetSplits, SpikeDataset

R_BIG, R_SMALL = 0.5, 0.1
SPLIT_SEEDS = {"train": 42, "val": 41, "test": 40}
SPLIT_SIZES = {"train": 5000, "val": 1000, "test": 1000}


def yinyang_class(x: float, y: float) -> int:
    """0 = yin, 1 = yang, 2 = dots, for a point inside the big circle of radius 0.5."""
    d_right = np.hypot(x - 1.5 * R_BIG, y - R_BIG)
    d_left = np.hypot(x - 0.5 * R_BIG, y - R_BIG)
    if d_right < R_SMALL or d_left < R_SMALL:
        return 2
    is_yin = (
        d_right <= R_SMALL
        or (R_SMALL < d_left <= 0.5 * R_BIG)
        or (y > R_BIG and d_right > 0.5 * R_BIG)
    )
    return 0 if is_yin else 1


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` class-balanced points (x, y) in the unit square's inscribed circle, labels."""
    rng = np.random.default_rng(seed)
    points, labels = [], []
    target = 0
    while len(points) < n:
        x, y = rng.random(2)
        if np.hypot(x - R_BIG, y - R_BIG) > R_BIG:
            continue
        cls = yinyang_class(x, y)
        if cls != target:
            continue
        points.append((x, y))
        labels.append(cls)
        target = (target + 1) % 3
    return np.array(points), np.array(labels, dtype=np.int64)


def encode(
    points: np.ndarray, dt: float, t_early_ms: float, t_late_ms: float, bias_ms: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Channel i in (x, y, 1-x, 1-y) spikes at t_early + v (t_late - t_early); channel 4
    is a bias spike at ``bias_ms``."""
    features = np.column_stack([points, 1.0 - points])
    times = t_early_ms + features * (t_late_ms - t_early_ms)
    steps = np.round(np.column_stack([times, np.full(len(points), bias_ms)]) / dt)
    units = np.arange(5)
    return [(row.astype(np.int64), units) for row in steps]


def load(
    dt: float = 1.0, t_early_ms: float = 2.0, t_late_ms: float = 27.0, tail_ms: float = 23.0
) -> DatasetSplits:
    """Train/validation/test of 5000/1000/1000 points (fixed seeds)."""
    n_steps = int(round((t_late_ms + tail_ms) / dt))
    splits = {}
    for split, size in SPLIT_SIZES.items():
        points, labels = generate(size, SPLIT_SEEDS[split])
        samples = encode(points, dt, t_early_ms, t_late_ms, bias_ms=t_early_ms)
        splits[split] = SpikeDataset(samples, labels, 5, 3, n_steps, dt)
    return DatasetSplits("yinyang", splits["train"], splits["val"], splits["test"])
