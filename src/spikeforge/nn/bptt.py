"""Surrogate-gradient BPTT: the second training method for spikeforge layers.

The forward dynamics are exactly those of the EventProp engine (ALGORITHMS.md section 1,
:mod:`spikeforge.engine.reference`): the same exact per-step decay factors and, per time
step n, the same operation order

  1. integrate over the step:  V = a_m V + g I ;  I = a_s I  (;  A = a_a A  for ALIF)
  2. threshold: s = H(V - theta - beta A); V <- V (1 - s)  (;  A <- A + s)
  3. input arrival: I += h[n] (+ s @ W_rec^T)

so both methods produce identical spikes for the same weights. Here the loop is plain,
device-agnostic torch code differentiated by autograd (memory O(B x T x N)); the
Heaviside step H gets a surrogate derivative in the backward pass:

* ``fast_sigmoid`` (SuperSpike, Zenke & Ganguli 2018): H'(x) ~ 1 / (1 + slope |x|)^2
* ``arctan``: H'(x) ~ 1 / (1 + (pi/2 slope x)^2)

Both peak at 1 at threshold; ``slope`` (per unit of voltage) sets how narrow they are.
The loops iterate over precomputed input currents ``h.unbind(1)`` (never ``h[:, t]``
indexing, which would make the backward pass O(T^2)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TorchDecays:
    """Per-neuron exact step factors as tensors [N] (differentiable w.r.t. the taus)."""

    alpha_mem: torch.Tensor
    alpha_syn: torch.Tensor
    syn_gain: torch.Tensor


def torch_decays(tau_mem: torch.Tensor, tau_syn: torch.Tensor, dt: float,
                 dtype: torch.dtype) -> TorchDecays:
    """Exact factors of :meth:`LIFParams.decays` for tau vectors (ms), computed in float64
    (bit-identical to the engine's numbers) and cast to ``dtype``; autograd flows to the
    taus when they require grad."""
    tm, ts = tau_mem.to(torch.float64), tau_syn.to(torch.float64)
    alpha_mem = torch.exp(-dt / tm)
    alpha_syn = torch.exp(-dt / ts)
    diff = ts - tm
    equal = diff.abs() < 1e-9 * tm
    safe = torch.where(equal, torch.ones_like(diff), diff)
    syn_gain = torch.where(equal, dt / tm * alpha_mem, ts / safe * (alpha_syn - alpha_mem))
    return TorchDecays(alpha_mem.to(dtype), alpha_syn.to(dtype), syn_gain.to(dtype))


@dataclass(frozen=True)
class Adaptation:
    """Threshold adaptation of an ALIF layer: factor a_a = exp(-dt / tau_adapt) [N] and
    strength beta [N] (effective threshold theta + beta A)."""

    alpha_adapt: torch.Tensor
    beta: torch.Tensor


def lif_loop(
    h: torch.Tensor,
    w_rec: torch.Tensor | None,
    decays: TorchDecays,
    threshold: torch.Tensor | float,
    surrogate: str = DEFAULT_SURROGATE,
    slope: float = DEFAULT_SLOPE,
    adaptation: Adaptation | None = None,
    detach_reset: bool = True,
    spike_fn=None,
) -> torch.Tensor:
    """Differentiable LIF / ALIF time loop.

    Args:
        h: input current arriving at each step ``[B, T, N]`` (x @ W_in^T).
        w_rec: recurrent weights ``[N, N]`` (post, pre) or None.
        decays: per-neuron step factors (:func:`torch_decays`).
        threshold: firing threshold (scalar or [N]).
        surrogate, slope: surrogate derivative of the Heaviside.
        adaptation: ALIF threshold adaptation, or None for LIF.
        detach_reset: stop the gradient through the reset V <- V (1 - s) (common practice,
            Zenke & Vogels 2021); the forward is the same either way.
        spike_fn: replaces the surrogate spike function (tests use a smooth one).

    Returns:
        spikes ``[B, T, N]`` in {0, 1}.
    """
    spike = spike_fn or (lambda x: surrogate_spike(x, surrogate, slope))
    n_batch, _, n_out = h.shape
    v = h.new_zeros(n_batch, n_out)
    i_syn = h.new_zeros(n_batch, n_out)
    adapt = h.new_zeros(n_batch, n_out) if adaptation is not None else None
    a_m, a_s, g = decays.alpha_mem, decays.alpha_syn, decays.syn_gain
    w_rec_t = None if w_rec is None else w_rec.t()
    out = []
    for h_n in h.unbind(1):
        v = a_m * v + g * i_syn
        i_syn = a_s * i_syn
        if adapt is not None:
            adapt = adaptation.alpha_adapt * adapt
            s = spike(v - (threshold + adaptation.beta * adapt))
        else:
            s = spike(v - threshold)
        v = v * (1.0 - (s.detach() if detach_reset else s))
        if adapt is not None:
            adapt = adapt + s
        i_syn = i_syn + h_n
        if w_rec_t is not None:
            i_syn = i_syn + s @ w_rec_t
        out.append(s)
    return torch.stack(out, dim=1)


def li_loop(h: torch.Tensor, decays: TorchDecays) -> torch.Tensor:
    """Differentiable leaky-integrator loop: ``h [B, T, N]`` -> V ``[B, T, N]`` recorded
    after each step's integration (same as the engine's LI readout)."""
    n_batch, _, n_out = h.shape
    v = h.new_zeros(n_batch, n_out)
    i_syn = h.new_zeros(n_batch, n_out)
    a_m, a_s, g = decays.alpha_mem, decays.alpha_syn, decays.syn_gain
    out = []
    for h_n in h.unbind(1):
        v = a_m * v + g * i_syn
        i_syn = a_s * i_syn
        out.append(v)
        i_syn = i_syn + h_n
    return torch.stack(out, dim=1)


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
