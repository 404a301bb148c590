"""Few-spike codes fitted on training data: one K and one gain per population.

The uniform few-spike code spends the same K steps on every spiking population, so the
latency is ``K x populations``. Populations differ in how much precision the output
needs from them (MNIST pixels are nearly binary, a wide hidden layer averages its
rounding errors away), so a per-population ``K_l`` can reach the same accuracy with a
smaller total ``sum_l K_l``. For each ``K_l`` the code's scale ``c_l`` (thresholds, resets
and spike values ``c_l 2^-t``, see :func:`~spikeforge.convert.simulate.simulate_fs`) is
chosen from :data:`GAINS` to minimise the mean squared coding error of that population on the
calibration images (clipping the rare largest activations against resolution).

:func:`fit_fs_codes` walks greedily from ``K_l = k_max`` everywhere down to 1 step per
population, each time removing one step from the population whose loss costs least on
the calibration images: highest agreement with the ANN's predictions, ties broken by the
smallest squared error of the (normalised) output. Every total latency from
``k_max x populations`` down to ``populations`` gets one code; only training images are
used, the test split is evaluated afterwards with the spiking simulation.

Latency and throughput: an image's answer is ready after ``sum_l K_l`` steps. With the
populations pipelined (population ``l`` codes image ``n`` while ``l + 1`` codes image
``n - 1``) a new image can enter every ``max_l K_l`` steps (the *interval*).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikeforge.convert.ifnet import ConvertedNetwork
from spikeforge.convert.simulate import fs_bits
from spikeforge.errors import SpikeforgeError

GAINS = tuple(2.0 ** (i / 4) for i in range(4, -9, -1))
"""Candidate code scales c_l: 2, 2^3/4, ..., 1/4. The largest coded value is
c_l (1 - 2^-K): c_l = 2 lets K = 1 code {0, 1} exactly, c_l < 1 clips the rare largest
activations (above the calibration percentile, or above c_l) for a finer step."""
FIT_IMAGES = 1000
"""Calibration images the codes are fitted and scored on (the first ones)."""
GAIN_SAMPLE = 200_000
"""Activations per population used to choose its gain (strided subsample)."""


@dataclass(frozen=True)
class FSCode:
    """A few-spike code: steps ``bits[l]`` and scale ``gains[l]`` per spiking population."""

    bits: tuple[int, ...]
    gains: tuple[float, ...]

    @property
    def steps(self) -> int:
        """Latency of one inference in time steps."""
        return sum(self.bits)

    @property
    def interval(self) -> int:
        """Steps between two images when the populations are pipelined."""
        return max(self.bits)

    @property
    def label(self) -> str:
        """``K_0/K_1/...`` (input population first)."""
        return "/".join(str(k) for k in self.bits)


def _quantise(value: torch.Tensor, k: int, gain: float) -> torch.Tensor:
    """Decoded few-spike value of ``value`` (normalised) with K = ``k`` and scale ``gain``:
    the closed form of :func:`~spikeforge.convert.simulate.fs_code`, ``gain`` times
    ``value / gain`` rounded to ``2^-k`` and clipped to [0, 1 - 2^-k]."""
    levels = 2.0**k
    return torch.clamp(torch.floor(value / gain * levels + 0.5), 0.0, levels - 1.0) * (
        gain / levels)


def _best_gain(value: torch.Tensor, k: int, fit_gain: bool,
               max_values: int = GAIN_SAMPLE) -> float:
    """Gain from :data:`GAINS` with the least mean squared coding error of ``value`` (at
    most ``max_values`` evenly strided entries are used)."""
    if not fit_gain:
        return 1.0
    flat = value.reshape(-1)
    flat = flat[:: max(1, flat.numel() // max_values)]
    target = flat.clamp(min=0)
    errors = [float(((_quantise(flat, k, g) - target) ** 2).mean()) for g in GAINS]
    return GAINS[min(range(len(GAINS)), key=errors.__getitem__)]


@torch.no_grad()
def ann_output(net: ConvertedNetwork, x: torch.Tensor) -> torch.Tensor:
    """Output of the normalised ANN (no quantisation, no clipping), ``[B, n_classes]``."""
    value = x
    for i, stage in enumerate(net.stages):
        value = stage.current(value)
        if i < len(net.stages) - 1:
            value = torch.relu(value)
    return value.reshape(len(x), -1)


@torch.no_grad()
def fs_output(net: ConvertedNetwork, x: torch.Tensor, bits: tuple[int, ...],
              fit_gains: bool = True) -> tuple[torch.Tensor, tuple[float, ...]]:
    """Output ``[B, n_classes]`` of the few-spike network with per-population ``bits``
    (fast path: a stage's input current is linear in the decoded spikes, so it is computed
    from the decoded values in one call) and the gains fitted on ``x`` along the way."""
    value, gains = x, []
    for stage, k in zip(net.stages, bits, strict=True):
        gain = _best_gain(value, k, fit_gains)
        gains.append(gain)
        value = stage.current(_quantise(value, k, gain))
    return value.reshape(len(x), -1), tuple(gains)


@torch.no_grad()
def fit_fs_codes(net: ConvertedNetwork, calibration: torch.Tensor, k_max: int = 8,
                 fit_gains: bool = True, batch_size: int = FIT_IMAGES) -> list[FSCode]:
    """Greedy per-population few-spike codes, one per total latency, fitted on
    ``calibration`` images ``[N, *input_shape]`` (training data, never the test split).

    Returns codes sorted by ``steps``, from ``populations`` (K = 1 everywhere) to
    ``k_max x populations``.
    """
    n_pop = len(net.stages)
    bits = tuple(fs_bits(k_max, n_pop))
    if len(calibration) == 0:
        raise SpikeforgeError("fitting few-spike codes needs calibration images")
    x = calibration[:batch_size]
    reference = ann_output(net, x)
    target = reference.argmax(1)
    norm = float((reference**2).mean()) or 1.0

    def score(candidate: tuple[int, ...]) -> tuple[float, float, tuple[float, ...]]:
        out, gains = fs_output(net, x, candidate, fit_gains)
        agree = float((out.argmax(1) == target).float().mean())
        return agree, -float(((out - reference) ** 2).mean()) / norm, gains

    codes = [FSCode(bits, score(bits)[2])]
    while sum(bits) > n_pop:
        best = None
        for layer in range(n_pop):
            if bits[layer] == 1:
                continue
            candidate = bits[:layer] + (bits[layer] - 1,) + bits[layer + 1 :]
            result = score(candidate)
            if best is None or result[:2] > best[0][:2]:
                best = (result, candidate)
        assert best is not None
        bits = best[1]
        codes.append(FSCode(bits, best[0][2]))
    return sorted(codes, key=lambda c: c.steps)


@torch.no_grad()
def uniform_fs_codes(net: ConvertedNetwork, calibration: torch.Tensor, k_max: int = 8,
                     batch_size: int = FIT_IMAGES) -> list[FSCode]:
    """The uniform code, K = 1 .. ``k_max`` on every population, each with the scales
    fitted as in :func:`fit_fs_codes` (the ablation of the per-population K)."""
    x = calibration[:batch_size]
    n_pop = len(net.stages)
    return [FSCode((k,) * n_pop, fs_output(net, x, (k,) * n_pop)[1])
            for k in range(1, k_max + 1)]
