"""Losses and readouts for spiking networks (see ALGORITHMS.md section 2).

Readout losses take LI membrane voltages ``V [B, T, C]`` and integer labels ``[B]``
and are softmax cross-entropies on a per-class summary s_c:

* ``sum``:      s_c = (1/T) sum_n V_c[n]                  (time mean)
* ``sum_exp``:  s_c = (1/T) sum_n exp(-t_n / T) V_c[n]    (loss shaping, Nowotny et al.)
* ``max``:      s_c = max_n V_c[n]

``first_spike`` works on spiking outputs: a cross-entropy on -t_first / tau0 plus a small
term that pulls the correct neuron's first spike earlier (Goltz et al. style).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from spikeforge.errors import SpikeforgeError
from spikeforge.nn.device_functional import DeviceSpikeRecord
from spikeforge.nn.records import SpikeRecord, record_of

READOUT_LOSSES = ("sum", "sum_exp", "max")
ALL_LOSSES = (*READOUT_LOSSES, "first_spike")


def readout_summary(v: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-class summary ``[B, C]`` of readout voltages ``v [B, T, C]``."""
    n_steps = v.shape[1]
    if kind == "sum":
        return v.mean(dim=1)
    if kind == "sum_exp":
        weights = torch.exp(-torch.arange(n_steps, dtype=v.dtype) / n_steps)
        return (v * weights[None, :, None]).sum(dim=1) / n_steps
    if kind == "max":
        return v.max(dim=1).values
    raise SpikeforgeError(f"unknown readout loss {kind!r}; choose one of {ALL_LOSSES}")


def readout_loss(v: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean cross-entropy of the readout summary against ``labels``."""
    return F.cross_entropy(readout_summary(v, kind), labels)


def _zero_grad(shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """A zero gradient (no memory) for a spike tensor whose timing gradient went to its record."""
    return torch.zeros((), dtype=dtype).expand(shape)


class _FirstSpikeTimes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes, record: SpikeRecord):
        ev = record.events
        t_first = np.full((ev.n_batch, ev.n_units), ev.n_steps * record.dt, dtype=np.float64)
        first_index = np.full((ev.n_batch, ev.n_units), -1, dtype=np.int64)
        # events are sorted by step within a sample, so the first occurrence of each
        # (sample, unit) key is that neuron's first spike
        keys = ev.sample_index() * ev.n_units + ev.unit
        unique_keys, first = np.unique(keys, return_index=True)
        first_index.reshape(-1)[unique_keys] = first
        hit = first_index >= 0
        t_first[hit] = ev.step[first_index[hit]] * record.dt
        ctx.record, ctx.first_index, ctx.spikes_shape = record, first_index, spikes.shape
        return torch.from_numpy(t_first).to(spikes.dtype)

    @staticmethod
    def backward(ctx, grad_t):
        hit = ctx.first_index >= 0
        ctx.record.dldt[ctx.first_index[hit]] += grad_t.detach().numpy()[hit]
        return _zero_grad(ctx.spikes_shape, grad_t.dtype), None


def first_spike_times(spikes: torch.Tensor) -> torch.Tensor:
    """First spike time (ms) per sample and neuron ``[B, N]`` of a spikeforge LIF output;
    neurons that stay silent get T * dt. Differentiable by EventProp."""
    record = record_of(spikes)
    if record is None:
        raise SpikeforgeError(
            "first_spike_times needs the output of a spikeforge LIF layer, passed directly"
        )
    if isinstance(record, DeviceSpikeRecord):
        raise SpikeforgeError(
            "first_spike_times runs on the CPU path only; move the network to the CPU "
            "(network.cpu()) or use a readout loss (sum, sum_exp, max) on the GPU"
        )
    return _FirstSpikeTimes.apply(spikes, record)


def first_spike_loss(
    t_first: torch.Tensor, labels: torch.Tensor, tau0: float = 5.0, alpha: float = 0.01
) -> torch.Tensor:
    """Loss on first spike times ``t_first [B, C]`` (ms, from :func:`first_spike_times`):
    cross-entropy on -t_first / tau0 plus alpha * (exp(t_correct / tau1) - 1), tau1 = 10 tau0.
    The predicted class is ``t_first.argmin(dim=1)``."""
    ce = F.cross_entropy(-t_first / tau0, labels)
    t_correct = t_first.gather(1, labels[:, None]).squeeze(1)
    return ce + alpha * (torch.exp(t_correct / (10 * tau0)) - 1).mean()


def silent_output_penalty(
    v_subthreshold: torch.Tensor,
    t_first: torch.Tensor,
    labels: torch.Tensor,
    t_silent: float,
    threshold: float,
    strength: float = 1.0,
) -> torch.Tensor:
    """Gives correct-class output neurons that never fired a gradient towards firing.

    A silent neuron has no spike time, so the first-spike loss cannot move it (EventProp
    gradients flow through spikes only). For each sample whose correct-class neuron stayed
    silent (``t_first == t_silent``) this adds ``strength * (threshold - max_t V)`` with V
    that neuron's membrane voltage (``v_subthreshold [B, T, C]`` from
    :meth:`spikeforge.nn.LIF.subthreshold_voltage`, exact for silent neurons), averaged
    over the batch: it raises the voltage peak until the neuron crosses threshold, after
    which the spike-time loss takes over (the role of mlGeNN's extra adjoint drive for a
    silent correct output neuron).
    """
    silent = (t_first.detach().gather(1, labels[:, None]).squeeze(1) >= t_silent)
    if not bool(silent.any()):
        return v_subthreshold.new_zeros(())
    index = labels[:, None, None].expand(-1, v_subthreshold.shape[1], 1)
    peak = v_subthreshold.gather(2, index).squeeze(2).max(dim=1).values
    gap = (threshold - peak).clamp(min=0.0)
    return strength * (gap * silent.to(gap.dtype)).sum() / labels.shape[0]


class _SpikeCountPenalty(torch.autograd.Function):
    @staticmethod
    def forward(ctx, token, record, target_count: float, strength: float):
        on_device = isinstance(record, DeviceSpikeRecord)
        if on_device:  # the CUDA path keeps spikes as a dense mask on the device
            counts = record.spikes.sum(dim=1).to(token.dtype)
            n_steps = record.spikes.shape[1]
        else:
            counts = torch.from_numpy(record.events.counts().astype(np.float64))
            n_steps = record.events.n_steps
        excess = counts - target_count
        ctx.record, ctx.excess, ctx.strength, ctx.on_device = record, excess, strength, on_device
        ctx.spikes_shape, ctx.n_time = token.shape, n_steps * record.dt
        ctx.scale = 1.0 / (counts.shape[0] * counts.shape[1])
        return token.new_tensor(0.5 * strength * float((excess**2).sum()) * ctx.scale)

    @staticmethod
    def backward(ctx, grad):
        factor = -float(grad) * ctx.strength * ctx.scale / ctx.n_time
        record = ctx.record
        if ctx.on_device:
            per_neuron = (factor * ctx.excess).to(record.dldt.dtype)[:, None, :]
            record.dldt += torch.where(record.spikes, per_neuron, 0.0)
        else:
            ev = record.events
            record.dldt += factor * ctx.excess.numpy()[ev.sample_index(), ev.unit]
        return _zero_grad(ctx.spikes_shape, grad.dtype), None, None, None


def spike_count_penalty(
    spikes: torch.Tensor, target_rate_hz: float, strength: float
) -> torch.Tensor:
    """Spike-count regulariser for a hidden layer's output (dense or token).

    Value: strength/2 * mean over samples and neurons of (count - target)^2, with
    target = rate * T. Counts are piecewise constant in the weights, so the gradient uses a
    surrogate count c = sum_k (1 - t_k / T_total) (each spike counted less the later it is):
    dL/dt_k = -strength * (count - target) / T_total, entering the EventProp jump of
    that spike -- it lowers the activity of neurons above target and raises it below.
    """
    record = record_of(spikes)
    if record is None:
        raise SpikeforgeError("spike_count_penalty needs a spikeforge LIF output")
    if not (strength >= 0 and math.isfinite(strength)):
        raise SpikeforgeError(f"regulariser strength must be >= 0, got {strength}")
    n_steps = (record.spikes.shape[1] if isinstance(record, DeviceSpikeRecord)
               else record.events.n_steps)
    n_time_s = n_steps * record.dt / 1000.0
    anchor = spikes if spikes.requires_grad else spikes.detach().requires_grad_(True)
    return _SpikeCountPenalty.apply(anchor, record, target_rate_hz * n_time_s, strength)
