"""Encoders from analogue values to spike events."""

from __future__ import annotations

import numpy as np

from spikeforge.errors import SpikeforgeError


def latency_encode(
    values: np.ndarray, t_max_ms: float, dt: float, t_min_ms: float = 0.0, log: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Time-to-first-spike code: each channel with value v in (0, 1] spikes once.

    Linear code: t = t_min + (1 - v) (t_max - t_min); log code: t = t_min +
    (t_max - t_min) * ln(1/v) / ln(1/v_min) with v_min = 1e-2 (clipped). Channels with
    v <= 0 stay silent. ``values`` is [N, ...] in [0, 1]; channels are flattened.
    Returns per-sample (step indices, channel indices).
    """
    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if flat.size and (flat.min() < 0 or flat.max() > 1):
        raise SpikeforgeError("latency_encode expects values in [0, 1]; rescale the data")
    span = t_max_ms - t_min_ms
    out = []
    for row in flat:
        units = np.flatnonzero(row > 0)
        v = row[units]
        frac = np.log(1.0 / np.clip(v, 1e-2, 1.0)) / np.log(1e2) if log else 1.0 - v
        steps = np.round((t_min_ms + frac * span) / dt).astype(np.int64)
        out.append((steps, units))
    return out


def poisson_encode(
    values: np.ndarray, n_steps: int, dt: float, max_rate_hz: float, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Poisson rate code: channel with value v fires with rate v * max_rate_hz."""
    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    rng = np.random.default_rng(seed)
    p = flat * max_rate_hz * dt / 1000.0
    out = []
    for row in p:
        fired = rng.random((n_steps, row.size)) < row[None, :]
        steps, units = np.nonzero(fired)
        out.append((steps, units))
    return out
