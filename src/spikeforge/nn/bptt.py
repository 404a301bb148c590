"""Surrogate-gradient BPTT: the second training method for spikeforge layers.

The forward dynamics are exactly those of the EventProp engine: the layer's neuron model
(:mod:`spikeforge.neurons`) stepped by the one dense loop
:func:`spikeforge.engine.dense_loop.simulate` on torch tensors, in the same operation
order as the compiled drivers, so both methods produce identical spikes for the same
weights. Autograd differentiates the loop (memory O(B x T x N)); the Heaviside step H
of the spike condition gets a surrogate derivative in the backward pass:

* ``fast_sigmoid`` (SuperSpike, Zenke & Ganguli 2018): H'(x) ~ 1 / (1 + slope |x|)^2
* ``arctan``: H'(x) ~ 1 / (1 + (pi/2 slope x)^2)

Both peak at 1 at threshold; ``slope`` (per unit of voltage) sets how narrow they are.
"""

from __future__ import annotations

import math

import torch

from spikeforge.errors import SpikeforgeError

SURROGATES = ("fast_sigmoid", "arctan")
DEFAULT_SURROGATE = "fast_sigmoid"
DEFAULT_SLOPE = 10.0


def check_surrogate(surrogate: str, slope: float, where: str = "bptt") -> None:
    """Raise :class:`SpikeforgeError` unless ``surrogate``/``slope`` are usable."""
    if surrogate not in SURROGATES:
        raise SpikeforgeError(
            f"{where}: unknown surrogate {surrogate!r}; choose one of {', '.join(SURROGATES)}"
        )
    if not (isinstance(slope, int | float) and math.isfinite(slope) and slope > 0):
        raise SpikeforgeError(
            f"{where}: surrogate slope must be a positive number, got {slope!r}; e.g. 10.0"
        )


def surrogate_derivative(x: torch.Tensor, surrogate: str, slope: float) -> torch.Tensor:
    """Surrogate dH/dx at ``x`` = V - threshold (same shape as x)."""
    if surrogate == "fast_sigmoid":
        return 1.0 / (1.0 + slope * x.abs()) ** 2
    if surrogate == "arctan":
        return 1.0 / (1.0 + (0.5 * math.pi * slope * x) ** 2)
    raise SpikeforgeError(f"unknown surrogate {surrogate!r}; choose one of {SURROGATES}")


class _SurrogateSpike(torch.autograd.Function):
    """Heaviside H(x) = [x >= 0] forward (as in the engine: V >= theta fires);
    surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x, surrogate: str, slope: float):
        ctx.save_for_backward(x)
        ctx.surrogate, ctx.slope = surrogate, slope
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * surrogate_derivative(x, ctx.surrogate, ctx.slope), None, None


def surrogate_spike(x: torch.Tensor, surrogate: str = DEFAULT_SURROGATE,
                    slope: float = DEFAULT_SLOPE) -> torch.Tensor:
    """Spikes H(x) in {0, 1} with a surrogate gradient; x = V - threshold."""
    return _SurrogateSpike.apply(x, surrogate, slope)


def dense_spike_count_penalty(spikes: torch.Tensor, target_rate_hz: float, strength: float,
                              dt: float) -> torch.Tensor:
    """BPTT counterpart of :func:`spikeforge.train.spike_count_penalty` for dense spikes
    ``[B, T, N]`` (dt in ms): strength/2 * mean over samples and neurons of
    (count - target)^2, target = rate * T; differentiable through the surrogate."""
    if not (strength >= 0 and math.isfinite(strength)):
        raise SpikeforgeError(f"regulariser strength must be >= 0, got {strength}")
    target = target_rate_hz * spikes.shape[1] * dt / 1000.0
    counts = spikes.sum(dim=1)
    return 0.5 * strength * ((counts - target) ** 2).mean()
