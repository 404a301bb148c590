"""A cheap cochlear front end that turns sound into SHD-style spike trains.

The Spiking Heidelberg Digits (Cramer et al. 2020) were made with a hydrodynamic
basilar-membrane model, Meddis inner hair cells and bushy cells on 700 channels. This
module keeps the same stages, each in a cheaper form, vectorised over channels with
NumPy; the per-channel time loop of the last stages is compiled with Numba::

    sound x(t)  [S] samples at fs Hz, arbitrary units (1.0 = full scale)
      │ gain  (level, dimensionless multiplier)
      ▼
    basilar membrane: 4th-order (all-pole) gammatone filters, centre frequencies
      equally spaced on the ERB-number scale between f_min_hz and f_max_hz (gain 1 at
      the centre); computed by complex demodulation in the frequency domain: the
      analytic signal A_c(t) e^{iθ_c(t)} of every channel on a grid of
      dt ≈ 1 / rate_hz (0.25 ms)                                  complex [C, T]
      ▼
    inner hair cell: half-wave rectification, power-law compression (exponent p =
      ``compression``) and a low-pass of order ``ihc_order`` at ``ihc_cutoff_hz``.
      For a narrow-band waveform A cos θ the rectified, compressed signal is
      A^p (c0 + c1 cos θ + c2 cos 2θ + ...); the low-pass keeps the mean c0 and scales
      the phase-locked fundamental by |L(f_c)| (harmonics are dropped), so phase
      locking fades above ~1 kHz as in the auditory nerve. The drive is counted in
      multiples above ``threshold`` (waveform units):
        drive = max((A / threshold)^p (1 + (c1 / c0) |L(f_c)| cos θ) - 1, 0)   [C, T]
      ▼
    adaptation (transmitter depletion, in the spirit of Meddis' synapse): divisive
      gain control by a fast and a slow running mean of r = drive_scale · drive,
      then saturation:
        u = r / (1 + adapt_fast LP_fast(r) + adapt_slow LP_slow(r))
        rate = spont_hz + peak_hz · u / (1 + u)                     [C, T] Hz
      (strong onsets; steady rates at most a third of ``peak_hz``; ``spont_hz`` 0:
      low-spontaneous-rate fibres, so silence gives no spikes)
      ▼
    auditory nerve: ``n_fibres`` Poisson fibres per channel at that rate, and one
      bushy cell per channel: a leaky integrate-and-fire neuron (membrane time constant
      ``bushy_tau_ms``, threshold 1, each fibre spike adds ``bushy_weight``, reset to 0,
      refractory ``refractory_ms``) that needs several coincident fibre spikes to fire.
      Its spikes are the output: times (s) and channels 0..C-1 (0 = lowest frequency).

With the defaults a spoken digit at the level of ``scripts/make_spoken_digits.py``
(RMS 0.05) gives a few thousand spikes. Spike times lie on the dt grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from spikeforge.errors import SpikeforgeError


@dataclass(frozen=True)
class CochleaParams:
    """Parameters of :func:`encode` (units in the names: Hz, ms; others dimensionless).

    ``gain`` multiplies the waveform (the sound level); the other fields fix the model.
    """

    n_channels: int = 700
    f_min_hz: float = 80.0
    f_max_hz: float = 8000.0
    rate_hz: float = 4000.0
    gain: float = 1.0
    compression: float = 0.3
    threshold: float = 3e-3
    ihc_cutoff_hz: float = 1000.0
    ihc_order: int = 4
    adapt_fast_ms: float = 3.0
    adapt_slow_ms: float = 60.0
    adapt_fast: float = 1.0
    adapt_slow: float = 1.0
    drive_scale: float = 1.0
    spont_hz: float = 0.0
    peak_hz: float = 300.0
    n_fibres: int = 16
    bushy_tau_ms: float = 2.0
    bushy_weight: float = 0.2
    refractory_ms: float = 1.0

    def check(self) -> None:
        """Raise :class:`SpikeforgeError` naming the first invalid field."""
        if self.n_channels < 1:
            raise SpikeforgeError(f"n_channels must be >= 1, got {self.n_channels}")
        if not 0 < self.f_min_hz < self.f_max_hz:
            raise SpikeforgeError(f"need 0 < f_min_hz < f_max_hz, got {self.f_min_hz} and "
                                  f"{self.f_max_hz}")
        positive = ("rate_hz", "ihc_cutoff_hz", "adapt_fast_ms", "adapt_slow_ms",
                    "drive_scale", "peak_hz", "bushy_tau_ms", "bushy_weight", "compression",
                    "threshold")
        for name in positive:
            if not getattr(self, name) > 0:
                raise SpikeforgeError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("gain", "spont_hz", "adapt_fast", "adapt_slow", "refractory_ms"):
            if not getattr(self, name) >= 0:
                raise SpikeforgeError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_fibres < 1 or self.ihc_order < 1:
            raise SpikeforgeError("n_fibres and ihc_order must be >= 1")


def erb_hz(f_hz: np.ndarray) -> np.ndarray:
    """Equivalent rectangular bandwidth (Glasberg & Moore 1990), Hz, of centre ``f_hz``."""
    return 24.7 * (4.37e-3 * np.asarray(f_hz, dtype=np.float64) + 1.0)


def erb_space(n: int, f_min_hz: float, f_max_hz: float) -> np.ndarray:
    """``n`` centre frequencies (Hz, ascending, float64 [n]) equally spaced in ERB number
    between ``f_min_hz`` and ``f_max_hz`` (both included)."""
    lo, hi = (21.4 * np.log10(4.37e-3 * f + 1.0) for f in (f_min_hz, f_max_hz))
    return (10.0 ** (np.linspace(lo, hi, n) / 21.4) - 1.0) / 4.37e-3


def _smooth_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (a fast FFT length)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p2 = p35
            while p2 < n:
                p2 *= 2
            best = min(best, p2)
            p35 *= 3
        p5 *= 5
    return best


@lru_cache(maxsize=4)
def _filterbank(n_samples: int, fs: float, params: CochleaParams):
    """Cached geometry of :func:`basilar_membrane` for one signal length.

    Returns ``(n_fft, dt_s, cf_hz [C], bins int32 [C, M], weights complex64 [C, M])``:
    output position j of channel c takes spectrum bin ``bins[c, j]`` (the bin k within
    M/2 of the centre bin with k = j mod M) times the gammatone response ``weights``.
    """
    cf = erb_space(params.n_channels, params.f_min_hz, params.f_max_hz)
    n_fft = _smooth_length(int(n_samples + np.ceil(0.04 * fs)))
    m = _smooth_length(int(np.ceil(n_fft * params.rate_hz / fs)))
    df = fs / n_fft
    k_centre = np.rint(cf / df).astype(np.int64)[:, None]
    positions = np.arange(m, dtype=np.int64)[None, :]
    bins = k_centre + (positions - k_centre + m // 2) % m - m // 2  # [C, M]
    valid = (bins >= 1) & (bins <= n_fft // 2)
    detune = (bins * df - cf[:, None]) / (1.019 * erb_hz(cf)[:, None])
    weights = np.where(valid, (1.0 + 1j * detune) ** -4, 0) * (2.0 * m / n_fft)
    bins = np.clip(bins, 0, n_fft // 2).astype(np.int32)
    return n_fft, n_fft / (m * fs), cf, bins, weights.astype(np.complex64)


def basilar_membrane(
    x: np.ndarray, fs: float, params: CochleaParams = CochleaParams()
) -> tuple[np.ndarray, float, np.ndarray]:
    """Gammatone filterbank by complex demodulation.

    Each channel's band of the spectrum of ``x`` (``M`` bins around its centre, weighted
    by the all-pole gammatone response (1 + i (f - f_c) / b)^-4 with b = 1.019 ERB(f_c))
    is inverse-transformed at the length ``M`` of the output grid, with bin k placed at
    position k mod M, which gives the channel's analytic signal (carrier included) every
    dt = n_fft / (M fs) s.

    Args:
        x: waveform, float [S] (arbitrary units; ``params.gain`` is applied here).
        fs: sample rate, Hz.

    Returns:
        ``(analytic, dt_s, cf_hz)``: complex64 [C, T], the analytic signal of every
        channel (its real part is the filter output, its modulus the envelope, in units
        of x); dt_s the grid step in seconds (≈ 1 / rate_hz, never longer); cf_hz
        float64 [C] the centre frequencies. T covers the signal plus at least 40 ms of
        ringing.
    """
    params.check()
    x = np.asarray(x, dtype=np.float64).ravel() * params.gain
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise SpikeforgeError("the waveform must be a non-empty array of finite numbers")
    if params.f_max_hz >= fs / 2:
        raise SpikeforgeError(f"f_max_hz {params.f_max_hz} must be below the Nyquist "
                              f"frequency {fs / 2} Hz of the sound")
    n_fft, dt, cf, bins, weights = _filterbank(x.size, float(fs), params)
    spectrum = np.fft.rfft(x, n_fft).astype(np.complex64)
    analytic = np.fft.ifft(spectrum[bins] * weights, axis=1)
    return analytic.astype(np.complex64, copy=False), dt, cf


def _rectifier_coefficients(p: float) -> tuple[float, float]:
    """Mean and first cosine coefficient of max(cos θ, 0)^p over one period."""
    theta = np.linspace(-np.pi, np.pi, 4097)[:-1]
    wave = np.maximum(np.cos(theta), 0.0) ** p
    return float(wave.mean()), float(2.0 * np.mean(wave * np.cos(theta)))


def hair_cell(analytic: np.ndarray, cf_hz: np.ndarray, dt_s: float,
              params: CochleaParams = CochleaParams()) -> np.ndarray:
    """Inner-hair-cell drive: low-passed, compressed, half-wave rectified BM motion.

    Args:
        analytic: complex [C, T] from :func:`basilar_membrane`.
        cf_hz: centre frequencies, Hz [C]. dt_s: grid step, s.

    Returns:
        float32 [C, T] ≥ 0: multiples of the threshold, max(h / h_thr - 1, 0) where
        h = c0 A^p (1 + (c1 / c0) |L(f_c)| cos θ) and h_thr = c0 threshold^p. The
        phase-locked part is kept only for carriers below 0.45 / dt_s.
    """
    c0, c1 = _rectifier_coefficients(params.compression)
    low_pass = np.abs((1.0 + 1j * cf_hz / params.ihc_cutoff_hz) ** -params.ihc_order)
    low_pass = np.where(cf_hz < 0.45 / dt_s, low_pass, 0.0).astype(np.float32)
    envelope = np.abs(analytic)
    cosine = analytic.real / np.maximum(envelope, np.float32(1e-30))
    locked = 1.0 + np.float32(c1 / c0) * low_pass[:, None] * cosine
    level = (envelope / np.float32(params.threshold)) ** np.float32(params.compression)
    return np.maximum(level * locked - 1.0, 0.0).astype(np.float32, copy=False)


@njit(cache=True, fastmath=True)
def _nerve(drive, rng, dt_s, scale, a_fast, a_slow, k_fast, k_slow, spont_hz, peak_hz,
           n_fibres, weight, decay, dead_steps):  # pragma: no cover - compiled
    """Adaptation, Poisson fibres and bushy LIF per channel; bool [C, T] spikes."""
    n_channels, n_steps = drive.shape
    fired = np.zeros((n_channels, n_steps), np.bool_)
    per_step = n_fibres * dt_s
    for c in range(n_channels):
        fast = 0.0
        slow = 0.0
        v = 0.0
        ready = 0
        for t in range(n_steps):
            r = drive[c, t] * scale
            fast += (r - fast) * k_fast
            slow += (r - slow) * k_slow
            u = r / (1.0 + a_fast * fast + a_slow * slow)
            lam = (spont_hz + peak_hz * u / (1.0 + u)) * per_step
            v *= decay
            if lam > 0.0:
                v += weight * rng.poisson(lam)
            if v >= 1.0 and t >= ready:
                fired[c, t] = True
                v = 0.0
                ready = t + dead_steps + 1
    return fired


def nerve_spikes(drive: np.ndarray, dt_s: float, rng: np.random.Generator,
                 params: CochleaParams = CochleaParams()) -> tuple[np.ndarray, np.ndarray]:
    """Adaptation, auditory-nerve fibres and bushy cells (see the module docstring).

    Args:
        drive: hair-cell output, float [C, T] (from :func:`hair_cell`). dt_s: step, s.
        rng: source of the fibre spikes (the only randomness of the front end).

    Per channel and step: r = drive_scale * drive; running means
    LP(r) += (r - LP(r)) (1 - exp(-dt / tau)) with tau = adapt_fast_ms, adapt_slow_ms;
    u = r / (1 + adapt_fast LP_fast + adapt_slow LP_slow); fibre rate
    spont_hz + peak_hz u / (1 + u) (Hz); fibre spikes Poisson(n_fibres rate dt); bushy
    v <- v exp(-dt / bushy_tau) + bushy_weight * (fibre spikes), spike and reset to 0 at
    v >= 1 unless within ``refractory_ms`` of its last spike.

    Returns:
        ``(times_s, units)``: float32 [E] spike times in seconds (sorted) and uint16 [E]
        channels.
    """
    drive = np.ascontiguousarray(drive, dtype=np.float32)
    if drive.ndim != 2:
        raise SpikeforgeError(f"drive must be [channels, time], got shape {drive.shape}")
    fired = _nerve(drive, rng, float(dt_s), float(params.drive_scale),
                   float(params.adapt_fast), float(params.adapt_slow),
                   float(1.0 - np.exp(-dt_s / (params.adapt_fast_ms * 1e-3))),
                   float(1.0 - np.exp(-dt_s / (params.adapt_slow_ms * 1e-3))),
                   float(params.spont_hz), float(params.peak_hz), float(params.n_fibres),
                   float(params.bushy_weight),
                   float(np.exp(-dt_s / (params.bushy_tau_ms * 1e-3))),
                   int(round(params.refractory_ms * 1e-3 / dt_s)))
    step, unit = np.nonzero(fired.T)
    return (step * dt_s).astype(np.float32), unit.astype(np.uint16)


def encode(x: np.ndarray, fs: float, params: CochleaParams = CochleaParams(),
           seed: int | np.random.SeedSequence = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spike trains of sound ``x`` (float [S] at ``fs`` Hz) through the whole front end.

    Returns ``(times_s, units)``: float32 [E] seconds from the start of ``x``, sorted,
    and uint16 [E] channels in 0..n_channels-1 (0 = lowest frequency). The same ``seed``
    gives the same spikes.
    """
    analytic, dt, cf = basilar_membrane(x, fs, params)
    drive = hair_cell(analytic, cf, dt, params)
    return nerve_spikes(drive, dt, np.random.default_rng(seed), params)
