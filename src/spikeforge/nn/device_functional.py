"""EventProp autograd Functions on the torch (CUDA) path: :mod:`spikeforge.engine.torch_kernels`.

Used automatically when a layer's input lives on a CUDA device (or with
``backend="torch"``). Spikes travel between layers as dense tensors ``[B, T, N]`` on the
device, each carrying a :class:`DeviceSpikeRecord`; as on the CPU path, a consuming
spikeforge layer adds the exact timing sensitivity dL/dt of each input spike into the
producer's record instead of returning a dense gradient, and generic consumers' dense
gradients G are turned into timing sensitivities by (G[n+1] - G[n]) / dt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from spikeforge.engine import torch_kernels as kernels
from spikeforge.engine.layers import DEFAULT_MIN_VDOT
from spikeforge.events import Events
from spikeforge.nn.functional import numpy_dtype
from spikeforge.nn.records import attach, record_of
from spikeforge.nn.time_constants import neuron_arrays


@dataclass
class DeviceSpikeRecord:
    """Spikes of one layer on a device: mask [B, T, N] bool, current at each spike
    ``isyn`` [B, T, N], step ``dt`` (ms) and the accumulated timing gradient ``dldt``."""

    spikes: torch.Tensor
    isyn: torch.Tensor
    dt: float
    dldt: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.dldt = torch.zeros_like(self.isyn)

    @property
    def events(self) -> Events:
        """The spikes as CPU :class:`Events` (a device-to-host copy; for statistics)."""
        events = Events.from_dense(self.spikes.cpu().numpy())
        events.isyn = self.isyn.cpu().numpy()[events.sample_index(), events.step, events.unit]
        return events


@dataclass
class DeviceCall:
    """Non-tensor arguments of one layer call on the device path."""

    neurons: kernels.DeviceNeurons
    dt: float
    min_vdot: float
    upstream: DeviceSpikeRecord | None
    output: DeviceSpikeRecord | None = None
    adapt: kernels.DeviceAdaptation | None = None
    a_spk: torch.Tensor | None = None  # ALIF: adaptation before each spike [B, T, N]


def upstream_record(x: torch.Tensor) -> DeviceSpikeRecord | None:
    """The device spike record carried by ``x``, if it came from a device-path LIF layer."""
    record = record_of(x)
    return record if isinstance(record, DeviceSpikeRecord) else None


def _timing_from_dense(record: DeviceSpikeRecord, grad: torch.Tensor | None) -> torch.Tensor:
    """dL/dt of every spike: consumers' exact share plus the dense-gradient difference."""
    dldt = record.dldt
    record.dldt = torch.zeros_like(dldt)
    if grad is not None:
        following = torch.cat([grad[:, 1:], torch.zeros_like(grad[:, :1])], dim=1)
        dldt = dldt + torch.where(record.spikes, (following - grad) / record.dt, 0.0)
    return dldt


def _input_grad(x: torch.Tensor, call: DeviceCall, grads: kernels.DeviceGrads,
                w_in: torch.Tensor, needed: bool) -> torch.Tensor | None:
    if not needed:
        return None
    if call.upstream is not None:
        call.upstream.dldt += grads.in_dldt
        return torch.zeros_like(x)
    return torch.matmul(grads.lam_i_trace, w_in)


class DeviceLIFFunction(torch.autograd.Function):
    """LIF layer on the device path: x [B, T, in] -> spikes [B, T, N] (float 0/1)."""

    @staticmethod
    def forward(ctx, x, w_in, w_rec, call: DeviceCall):
        spikes, isyn, call.a_spk = kernels.lif_forward(
            x.detach(), w_in.detach(), None if w_rec is None else w_rec.detach(),
            call.neurons, call.adapt,
        )  # fmt: skip
        call.output = DeviceSpikeRecord(spikes, isyn, call.dt)
        ctx.call = call
        ctx.save_for_backward(x, w_in, w_rec)
        return spikes.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_spikes):
        x, w_in, w_rec = ctx.saved_tensors
        call: DeviceCall = ctx.call
        need_x = ctx.needs_input_grad[0]
        record = call.output
        grads = kernels.lif_backward(
            x.detach(), w_in.detach(), None if w_rec is None else w_rec.detach(),
            record.spikes, record.isyn, _timing_from_dense(record, grad_spikes),
            call.neurons, call.min_vdot, want_input_timing=need_x and call.upstream is not None,
            adapt=call.adapt, a_spk=call.a_spk,
        )  # fmt: skip
        return (_input_grad(x, call, grads, w_in, need_x), grads.grad_w_in, grads.grad_w_rec,
                None)


class DeviceLIFunction(torch.autograd.Function):
    """Leaky-integrator readout on the device path: x [B, T, in] -> V [B, T, N]."""

    @staticmethod
    def forward(ctx, x, w_in, call: DeviceCall):
        ctx.call = call
        ctx.save_for_backward(x, w_in)
        return kernels.li_forward(x.detach(), w_in.detach(), call.neurons)

    @staticmethod
    def backward(ctx, grad_v):
        x, w_in = ctx.saved_tensors
        call: DeviceCall = ctx.call
        need_x = ctx.needs_input_grad[0]
        grads = kernels.li_backward(x.detach(), w_in.detach(), grad_v.contiguous(),
                                    call.neurons, need_x and call.upstream is not None)
        return _input_grad(x, call, grads, w_in, need_x), grads.grad_w_in, None


def run_lif_device(x, w_in, w_rec, call: DeviceCall) -> torch.Tensor:
    """Apply :class:`DeviceLIFFunction` and attach the output's device spike record."""
    return attach(DeviceLIFFunction.apply(x, w_in, w_rec, call), call.output)


def run_li_device(x, w_in, call: DeviceCall) -> torch.Tensor:
    return DeviceLIFunction.apply(x, w_in, call)


def uses_device_path(x: torch.Tensor, backend: str) -> bool:
    """Whether a layer call runs on the torch path: CUDA input, or ``backend="torch"``."""
    return backend == "torch" or x.is_cuda


def _device_call(layer, x: torch.Tensor, adapt=None) -> DeviceCall:
    arrays = neuron_arrays(layer, layer.params, layer.out_features, layer.dt,
                           numpy_dtype(layer.weight.dtype))
    return DeviceCall(
        neurons=kernels.DeviceNeurons.from_arrays(arrays, layer.weight),
        dt=layer.dt, min_vdot=getattr(layer, "min_vdot", DEFAULT_MIN_VDOT),
        upstream=upstream_record(x),
        adapt=None if adapt is None else kernels.DeviceAdaptation.from_arrays(adapt, layer.weight),
    )  # fmt: skip


def lif_device(layer, x: torch.Tensor, adapt=None) -> torch.Tensor:
    """Forward of a :class:`spikeforge.nn.LIF` layer (or, with ``adapt``, an
    :class:`~spikeforge.engine.alif_layers.AdaptArrays`, an ALIF layer) on the torch
    (CUDA) path; the dense spikes [B, T, N] carry a :class:`DeviceSpikeRecord` (also left
    in ``last_record``)."""
    call = _device_call(layer, x, adapt)
    out = run_lif_device(x, layer.weight, layer.recurrent_weight, call)
    layer.last_record = call.output
    return out


def li_device(layer, x: torch.Tensor) -> torch.Tensor:
    """Forward of a :class:`spikeforge.nn.LI` readout on the torch (CUDA) path."""
    return run_li_device(x, layer.weight, _device_call(layer, x))
