"""Engine entry points for one layer with per-synapse delays on a CUDA GPU (fused kernels).

The counterpart of :func:`spikeforge.engine.delay_layers.delayed_forward` /
:func:`~spikeforge.engine.delay_layers.delayed_backward` for torch tensors on a CUDA
device, computed by the kernels of :mod:`gpu_delay_loop`: the same delay model
(``"interpolate"`` or ``"round"``), spikes as :class:`~spikeforge.engine.gpu_api.DeviceSpikes`,
gradients as :class:`~spikeforge.engine.delay_layers.DelayGrads` of tensors. Input
spikes stay sparse on the device (:class:`DeviceEvents`). CPU tensors only under Numba's
CUDA simulator, as in :mod:`gpu_api`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikeforge.engine import gpu_delay_loop
from spikeforge.engine.api import DEFAULT_MIN_VDOT
from spikeforge.engine.delay_layers import DelayGrads
from spikeforge.engine.gpu_api import (
    DeviceNeurons,
    DeviceSpikes,
    launch,
    no_spikes,
    numpy_dtype,
    record_spikes,
)
from spikeforge.engine.gpu_specialise import gpu_specialise
from spikeforge.events import Events


@dataclass(frozen=True)
class DeviceEvents:
    """Input spikes on the device in per-sample CSR form: ``ptr`` [B + 1] int64,
    ``step``/``unit`` [E] int32 and ``value`` [E], sorted by (sample, step, unit);
    ``index`` [E, 3] (sample, step, unit) as int64 for scattering back into [B, T, in]."""

    n_batch: int
    n_steps: int
    ptr: torch.Tensor
    step: torch.Tensor
    unit: torch.Tensor
    value: torch.Tensor
    index: torch.Tensor

    @classmethod
    def of(cls, inputs: Events | torch.Tensor, like: torch.Tensor) -> DeviceEvents:
        """From host :class:`Events` or a dense ``[B, T, in]`` tensor (its non-zeros),
        on ``like``'s device with ``like``'s value dtype."""
        if isinstance(inputs, Events):
            index = torch.stack([torch.from_numpy(inputs.sample_index()),
                                 torch.from_numpy(inputs.step).long(),
                                 torch.from_numpy(inputs.unit).long()], 1).to(like.device)
            value = torch.from_numpy(inputs.value).to(like)
            n_batch, n_steps = inputs.n_batch, inputs.n_steps
        else:
            index = torch.nonzero(inputs)
            value = inputs[index.unbind(1)].to(like.dtype)
            n_batch, n_steps = inputs.shape[0], inputs.shape[1]
        counts = torch.bincount(index[:, 0], minlength=n_batch)
        ptr = torch.zeros(n_batch + 1, dtype=torch.int64, device=like.device)
        torch.cumsum(counts, 0, out=ptr[1:])
        return cls(n_batch, n_steps, ptr, index[:, 1].int().contiguous(),
                   index[:, 2].int().contiguous(), value.contiguous(), index)


@dataclass(frozen=True)
class DeviceDelays:
    """Delays of a [pre, post] synapse matrix on the device in steps: ``q`` int32 and
    the fraction ``f`` (the value dtype), as
    :class:`~spikeforge.engine.delay_layers.DelaySteps` on the host."""

    q: torch.Tensor
    f: torch.Tensor

    @classmethod
    def from_ms(cls, delay_ms: torch.Tensor, dt: float, mode: str) -> DeviceDelays:
        """``mode="interpolate"``: q = floor(d/dt), f = d/dt - q; ``"round"``: q =
        round(d/dt), f = 0 (as ``DelaySteps.from_ms``, on the delays' device)."""
        steps = delay_ms.detach() / dt
        q = torch.round(steps) if mode == "round" else torch.floor(steps)
        f = torch.zeros_like(steps) if mode == "round" else steps - q
        return cls(q.int().contiguous(), f.contiguous())


def _synapses(w_in, d_in: DeviceDelays, w_rec, d_rec: DeviceDelays | None) -> tuple:
    """Kernel arrays (w_in, q_in, f_in, w_rec, q_rec, f_rec) and the ring length."""
    w_in = w_in.detach().contiguous()
    if w_rec is None:
        empty = w_in.new_zeros((0, w_in.shape[1]))
        rec = (empty, empty.int(), empty)
    else:
        rec = (w_rec.detach().contiguous(), d_rec.q, d_rec.f.to(w_in.dtype))
    max_q = max(int(d_in.q.max()) if d_in.q.numel() else 0,
                int(rec[1].max()) if rec[1].numel() else 0)
    return (w_in, d_in.q, d_in.f.to(w_in.dtype), *rec), max_q + 2


def delayed_forward(inputs: DeviceEvents, w_in: torch.Tensor, d_in: DeviceDelays,
                    w_rec: torch.Tensor | None, d_rec: DeviceDelays | None,
                    neurons: DeviceNeurons) -> DeviceSpikes | torch.Tensor:
    """Run a delayed layer: its spikes as :class:`DeviceSpikes` (spiking) or V
    ``[B, T, N]`` after each step's integration (readout). Weights [pre, post]."""
    arrays, n_slots = _synapses(w_in, d_in, w_rec, d_rec)
    like = arrays[0]
    n_batch, n_steps, n_out = inputs.n_batch, inputs.n_steps, like.shape[1]
    table = neurons.table.to(like.dtype).contiguous()
    kernel = gpu_specialise(gpu_delay_loop.delayed_forward, neurons.model, numpy_dtype(like))
    events = (inputs.ptr, inputs.step, inputs.unit, inputs.value)

    def run(step, unit, x1, x2, count, v_out=like.new_zeros((0, 0, 0))):
        ring = like.new_zeros((n_batch, n_slots, n_out))
        launch(kernel, n_batch, n_out, like, *events, *arrays, table, n_steps,
               neurons.spiking, ring, step, unit, x1, x2, count, v_out)

    if not neurons.spiking:
        v_out = like.new_empty((n_batch, n_steps, n_out))
        none_i, none_f, count = no_spikes(n_batch, like)
        run(none_i, none_i, none_f, none_f, count, v_out)
        return v_out
    return record_spikes(neurons.model, n_batch, n_steps, n_out, like, run, "delayed_")


def delayed_backward(inputs: DeviceEvents, w_in: torch.Tensor, d_in: DeviceDelays,
                     w_rec: torch.Tensor | None, d_rec: DeviceDelays | None,
                     neurons: DeviceNeurons, spikes: DeviceSpikes | None = None,
                     spike_dldt: torch.Tensor | None = None,
                     grad_v: torch.Tensor | None = None, want_input_timing: bool = False,
                     want_trace: bool = False,
                     min_vdot: float = DEFAULT_MIN_VDOT) -> DelayGrads:
    """EventProp backward of :func:`delayed_forward`. Spiking layers pass their
    ``spikes`` and ``spike_dldt`` [B, cap] (aligned with the buffers); readouts pass
    ``grad_v`` = dL/dV [B, T, N]. Returns :class:`DelayGrads` of tensors: weight and
    delay (per ms) gradients [pre, post], the timing sensitivity of each input event
    [E_in] (if asked) and the lam_I trace [B, T, N] (if asked)."""
    arrays, n_slots = _synapses(w_in, d_in, w_rec, d_rec)
    like = arrays[0]
    n_batch, n_steps, n_out = inputs.n_batch, inputs.n_steps, like.shape[1]
    table = neurons.table.to(like.dtype).contiguous()
    kernel = gpu_specialise(gpu_delay_loop.delayed_backward, neurons.model,
                            numpy_dtype(like))
    if spikes is not None:
        sp = (spikes.step, spikes.unit, spikes.x1.to(like.dtype), spikes.x2.to(like.dtype),
              spike_dldt.to(like.dtype).contiguous(), spikes.count)
        gv = like.new_zeros((0, 0, 0))
    else:
        none_i, none_f, none_count = no_spikes(n_batch, like)
        sp = (none_i, none_i, none_f, none_f, none_f, none_count)
        gv = grad_v.detach().to(like.dtype).contiguous()
    grads = [torch.zeros_like(a) for a in (arrays[0], arrays[0], arrays[3], arrays[3])]
    in_dldt = like.new_zeros(inputs.value.shape[0] if want_input_timing else 0)
    trace = like.new_zeros((n_batch, n_steps, n_out) if want_trace else (0, 0, 0))
    launch(kernel, n_batch, n_out, like, inputs.ptr, inputs.step, inputs.unit,
           inputs.value, *arrays, table, 1.0 / neurons.dt, n_steps, spikes is not None,
           *sp, gv, float(min_vdot), like.new_zeros((n_batch, n_slots, n_out)), *grads,
           in_dldt, want_input_timing, trace, want_trace)
    has_rec = w_rec is not None
    return DelayGrads(grads[0], grads[1], grads[2] if has_rec else None,
                      grads[3] if has_rec else None,
                      in_dldt if want_input_timing else None, trace if want_trace else None)
