"""Encoders from analogue values to spike events."""

from __future__ import annotations

import numpy as np

from spikeforge.errors import SpikeforgeError


def check_unit_range(values, who: str) -> None:
    """Check dense images ``values`` ``[N, ...]`` (a NumPy array or a CPU tensor, any
    numeric dtype; not copied) are finite and in [0, 1]; otherwise raise
    :class:`SpikeforgeError` naming ``who``, the first bad sample's index (along axis 0)
    and the fix. NaN and +-inf are reported as such, before the range check (NaN compares
    false to every bound and would otherwise encode as silence)."""
    flat = np.asarray(values)
    flat = flat.reshape(len(flat), -1) if flat.ndim else flat.reshape(1, 1)
    if not flat.size:
        return
    finite = np.isfinite(flat)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        first = int(bad_rows[0])
        pixel = int(np.flatnonzero(~finite[first])[0])
        raise SpikeforgeError(
            f"{who}: sample {first} holds {flat[first, pixel]} at pixel {pixel} "
            f"({int((~finite).sum())} non-finite values in {bad_rows.size} of {len(flat)} "
            "samples); replace NaN/inf in the images (e.g. np.nan_to_num(x, nan=0.0, "
            "posinf=1.0, neginf=0.0)) or drop those samples")
    outside = (flat < 0) | (flat > 1)
    if outside.any():
        first = int(np.flatnonzero(outside.any(axis=1))[0])
        raise SpikeforgeError(
            f"{who} expects values in [0, 1]; sample {first} spans "
            f"[{flat[first].min():g}, {flat[first].max():g}]; rescale the data (e.g. x / 255 "
            "for 8-bit images)")


def latency_encode(
    values: np.ndarray, t_max_ms: float, dt: float, t_min_ms: float = 0.0, log: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Time-to-first-spike code: each channel with value v in (0, 1] spikes once.

    Linear code: t = t_min + (1 - v) (t_max - t_min); log code: t = t_min +
    (t_max - t_min) * ln(1/v) / ln(1/v_min) with v_min = 1e-2 (clipped). Channels with
    v <= 0 stay silent. ``values`` is [N, ...] in [0, 1]; channels are flattened. NaN,
    inf or values outside [0, 1] raise :class:`SpikeforgeError` naming the sample.
    Returns per-sample (step indices, channel indices).
    """
    check_unit_range(values, "latency_encode")
    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
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
    """Poisson rate code: channel with value v in [0, 1] fires with rate v * max_rate_hz
    (Bernoulli per step with p = v * max_rate_hz * dt / 1000, at most one spike per step).
    ``values`` is [N, ...] (finite, in [0, 1], checked as in :func:`latency_encode`);
    returns per-sample (step indices, channel indices)."""
    check_unit_range(values, "poisson_encode")
    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    p = flat * max_rate_hz * dt / 1000.0
    if p.size and p.max() > 1:
        raise SpikeforgeError(
            f"max_rate_hz={max_rate_hz} exceeds one spike per step at dt={dt} ms; lower it"
        )
    rng = np.random.default_rng(seed)
    out = []
    for row in p:
        active = np.flatnonzero(row > 0)
        fired = rng.random((n_steps, active.size)) < row[active][None, :]
        steps, idx = np.nonzero(fired)
        out.append((steps, active[idx]))
    return out


ENCODINGS = ("latency", "log_latency", "poisson")


def encode_images(
    images: np.ndarray, method: str, dt: float, t_max_ms: float, n_steps: int,
    max_rate_hz: float = 100.0, seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Encode static images ``[N, H, W]`` (any trailing shape) with values in [0, 1].

    ``method``: ``latency`` (linear time-to-first-spike in [0, t_max_ms]),
    ``log_latency`` (logarithmic) or ``poisson`` (rate v * max_rate_hz over ``n_steps``).
    Channels are the flattened pixels (H * W of them).
    """
    if method == "latency":
        return latency_encode(images, t_max_ms=t_max_ms, dt=dt)
    if method == "log_latency":
        return latency_encode(images, t_max_ms=t_max_ms, dt=dt, log=True)
    if method == "poisson":
        return poisson_encode(images, n_steps, dt, max_rate_hz, seed)
    raise SpikeforgeError(f"unknown encoding {method!r}; choose one of {', '.join(ENCODINGS)}")
