"""Engine entry points for one layer with dense synapses on a CUDA GPU (fused kernels).

The counterpart of :func:`spikeforge.engine.api.forward` / :func:`~spikeforge.engine.api.backward`
for torch tensors on a CUDA device: the same inputs (dense input ``[B, T, in]`` or
:class:`Events`, weights ``[pre, post]``, the neuron model and its factor table) and the
same outputs (a spiking layer's spikes with the model's per-spike values, a readout's V
``[B, T, N]``, :class:`~spikeforge.engine.api.LayerGrads`), computed by the kernels of
:mod:`gpu_loop` bound to the model by :func:`gpu_specialise`. Spikes come back as
:class:`DeviceSpikes`, padded per-sample buffers on the device (the GPU's
:class:`Events`).

Tensors reach the kernels without a copy through ``numba.cuda.as_cuda_array`` and the
kernels run on torch's current stream. CPU tensors are accepted only under Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``), where the kernels run on the CPU: that is how
the tests compare these kernels with the CPU drivers without a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from numba import cuda

from spikeforge.engine import gpu_loop
from spikeforge.engine.api import DEFAULT_MIN_VDOT, LayerGrads
from spikeforge.engine.gpu_specialise import gpu_specialise
from spikeforge.events import Events
from spikeforge.neurons.base import NeuronModel

_capacity_hint: dict[tuple[str, int, int], int] = {}


def simulated() -> bool:
    """Whether Numba's CUDA simulator is on (kernels run on the CPU)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") == "1"


def available() -> bool:
    """Whether the fused kernels can run on real CUDA tensors here (a CUDA GPU that
    numba.cuda can use; False under the simulator and on ROCm builds of torch)."""
    if simulated() or not torch.cuda.is_available() or torch.version.hip is not None:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a driver numba cannot load: use the torch path
        return False


def supports(model: NeuronModel, n_out: int, dtype: torch.dtype) -> bool:
    """Whether the kernels cover a layer: a model with an EventProp adjoint, at most
    :data:`gpu_loop.MAX_NEURONS` neurons, float32 or float64."""
    return (model.supports("eventprop") and n_out <= gpu_loop.MAX_NEURONS
            and dtype in (torch.float32, torch.float64))


@dataclass(frozen=True)
class DeviceNeurons:
    """A population on the device: neuron model, factor table ``[K, N]`` (a tensor in
    the compute dtype, on the device), time step ``dt`` (ms), spiking or readout."""

    model: NeuronModel
    table: torch.Tensor
    dt: float
    spiking: bool


@dataclass
class DeviceSpikes:
    """A spiking layer's output on the device: per-sample padded buffers ``[B, cap]``
    (``step``, ``unit`` int32; the model's per-spike values ``x1`` and ``x2``, the latter
    ``[B, 0]`` for one-value models) of which the first ``count[b]`` entries of row b are
    spikes, ordered by step (within a step in arbitrary order)."""

    n_steps: int
    n_units: int
    step: torch.Tensor
    unit: torch.Tensor
    x1: torch.Tensor
    x2: torch.Tensor
    count: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        """[B, cap] bool: which buffer entries are spikes."""
        slots = torch.arange(self.step.shape[1], device=self.step.device)
        return slots[None, :] < self.count[:, None]

    def _index(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        valid = self.valid
        sample = torch.arange(self.step.shape[0], device=self.step.device)[:, None]
        return (sample.expand_as(self.step)[valid], self.step[valid].long(),
                self.unit[valid].long())

    def to_dense(self, values: torch.Tensor | None = None, dtype=None) -> torch.Tensor:
        """``[B, T, N]``: 1 at each spike (or the buffer ``values`` [B, cap] there)."""
        dtype = dtype or self.x1.dtype
        out = torch.zeros((self.step.shape[0], self.n_steps, self.n_units), dtype=dtype,
                          device=self.step.device)
        index = self._index()
        out[index] = 1.0 if values is None else values[self.valid].to(dtype)
        return out

    def gather(self, dense: torch.Tensor) -> torch.Tensor:
        """The entries of ``dense`` [B, T, N] at the spikes, as a [B, cap] buffer (0 in
        unused slots)."""
        out = torch.zeros(self.step.shape, dtype=dense.dtype, device=dense.device)
        out[self.valid] = dense[self._index()]
        return out

    def to_events(self) -> Events:
        """The spikes as host :class:`Events` (sorted by sample, step, unit)."""
        count = self.count.cpu().numpy().astype(np.int64)
        step, unit = self.step.cpu().numpy(), self.unit.cpu().numpy()
        x1, x2 = self.x1.cpu().numpy(), self.x2.cpu().numpy()
        rows = [np.lexsort((unit[b, : count[b]], step[b, : count[b]]))
                for b in range(len(count))]

        def flat(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a[b, order] for b, order in enumerate(rows)]
                                  + [a[:0, 0]])

        ptr = np.zeros(len(count) + 1, dtype=np.int64)
        np.cumsum(count, out=ptr[1:])
        return Events(len(count), self.n_steps, self.n_units, ptr, flat(step), flat(unit),
                      np.ones(int(ptr[-1]), dtype=x1.dtype), flat(x1),
                      flat(x2) if x2.shape[1] else None)


def _array(tensor: torch.Tensor):
    """A kernel argument viewing ``tensor`` (no copy): a CUDA array for a CUDA tensor, a
    NumPy array for a CPU tensor (the simulator only)."""
    tensor = tensor.detach()
    if tensor.is_cuda:
        return cuda.as_cuda_array(tensor)
    if not simulated():
        raise ValueError("the fused GPU kernels take CUDA tensors (CPU tensors only under "
                         "NUMBA_ENABLE_CUDASIM=1)")
    return tensor.numpy()


def launch(kernel, n_batch: int, n_out: int, like: torch.Tensor, *args) -> None:
    """Run ``kernel`` with one block per sample on ``like``'s device and torch's stream."""
    threads = gpu_loop.threads_for(n_out)
    converted = [_array(a) if isinstance(a, torch.Tensor) else a for a in args]
    if not like.is_cuda:
        kernel[n_batch, threads](*converted)
        return
    with cuda.gpus[like.device.index or 0]:
        stream = cuda.external_stream(torch.cuda.current_stream(like.device).cuda_stream)
        kernel[n_batch, threads, stream](*converted)


def numpy_dtype(tensor: torch.Tensor) -> np.dtype:
    return np.dtype(str(tensor.dtype).removeprefix("torch."))


def _dense_input(inputs: Events | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if isinstance(inputs, Events):
        return torch.from_numpy(inputs.to_dense()).to(like)
    return inputs.to(like.dtype)


def no_spikes(n_batch: int, like: torch.Tensor) -> tuple:
    """Empty spike buffers ([B, 0] int32 and value dtype) and a zero count [B] for
    readout launches."""
    return (torch.zeros((n_batch, 0), dtype=torch.int32, device=like.device),
            like.new_zeros((n_batch, 0)),
            torch.zeros(n_batch, dtype=torch.int64, device=like.device))


def _rec(w_rec: torch.Tensor | None, w_in: torch.Tensor) -> torch.Tensor:
    if w_rec is None:
        return w_in.new_zeros((0, w_in.shape[1]))
    return w_rec.detach().contiguous()


def forward(inputs: Events | torch.Tensor, w_in: torch.Tensor, w_rec: torch.Tensor | None,
            neurons: DeviceNeurons) -> DeviceSpikes | torch.Tensor:
    """Run a layer (see :func:`spikeforge.engine.api.forward`): its spikes as
    :class:`DeviceSpikes` (spiking) or V ``[B, T, N]`` after each step's integration
    (readout). The input currents of all steps are one GEMM."""
    w_in = w_in.detach()
    x = _dense_input(inputs, w_in)
    n_batch, n_steps, _ = x.shape
    n_out = w_in.shape[1]
    currents = torch.matmul(x, w_in).contiguous()
    table = neurons.table.to(w_in.dtype).contiguous()
    kernel = gpu_specialise(gpu_loop.forward, neurons.model, numpy_dtype(w_in))
    rec = _rec(w_rec, w_in)
    if not neurons.spiking:
        v_out = w_in.new_empty((n_batch, n_steps, n_out))
        none_i, none_f, count = no_spikes(n_batch, w_in)
        launch(kernel, n_batch, n_out, w_in, currents, rec, table, n_steps, False,
                none_i, none_i, none_f, none_f, count, v_out)
        return v_out

    def run(step, unit, x1, x2, count):
        launch(kernel, n_batch, n_out, w_in, currents, rec, table, n_steps, True, step,
                unit, x1, x2, count, w_in.new_zeros((0, 0, 0)))

    return record_spikes(neurons.model, n_batch, n_steps, n_out, w_in, run)


def record_spikes(model: NeuronModel, n_batch: int, n_steps: int, n_out: int,
                  like: torch.Tensor, run, prefix: str = "") -> DeviceSpikes:
    """Run a spiking kernel through ``run(step, unit, x1, x2, count)`` into padded
    buffers of a remembered capacity, re-running with larger buffers when a sample
    overflowed (as the CPU drivers do); ``like`` gives the device and value dtype."""
    key = (prefix + model.name, n_steps, n_out)
    cap = max(64, _capacity_hint.get(key, n_steps * n_out // 50 + 64))
    two = model.n_spike_values > 1
    count = torch.zeros(n_batch, dtype=torch.int64, device=like.device)
    while True:
        cap = min(cap, n_steps * n_out)
        step = torch.zeros((n_batch, cap), dtype=torch.int32, device=like.device)
        unit = torch.zeros_like(step)
        x1 = like.new_zeros((n_batch, cap))
        x2 = like.new_zeros((n_batch, cap if two else 0))
        count.zero_()
        run(step, unit, x1, x2, count)
        most = int(count.max()) if n_batch else 0
        if most <= cap:
            break
        cap = int(most * 1.25) + 16
    _capacity_hint[key] = int(most * 1.25) + 16
    return DeviceSpikes(n_steps, n_out, step, unit, x1, x2, count)


def backward(inputs: Events | torch.Tensor, w_in: torch.Tensor, w_rec: torch.Tensor | None,
             neurons: DeviceNeurons, spikes: DeviceSpikes | None = None,
             spike_dldt: torch.Tensor | None = None, grad_v: torch.Tensor | None = None,
             want_input_timing: bool = False, want_trace: bool = False,
             min_vdot: float = DEFAULT_MIN_VDOT) -> LayerGrads:
    """EventProp backward of :func:`forward` (see :func:`spikeforge.engine.api.backward`).

    Spiking layers pass their ``spikes`` and ``spike_dldt`` [B, cap], the timing
    sensitivity each spike received from its consumers (aligned with the buffers; see
    :meth:`DeviceSpikes.gather`); readouts pass ``grad_v`` = dL/dV [B, T, N]. Returns
    tensors: grad_w_in [in, N], grad_w_rec [N, N] or None, ``input_dldt`` dense
    [B, T, in] (x times each input's timing sensitivity) and lam_i_trace [B, T, N].

    The inputs' timing comes from the trace, (lam_I[n+1] - lam_I[n]) / dt, which needs
    lam_I continuous across a spike's jump: true of every current-based model (the
    synaptic current does not jump at an own spike), the ones with an EventProp adjoint.
    """
    w_in = w_in.detach()
    x = _dense_input(inputs, w_in)
    n_batch, n_steps, n_in = x.shape
    n_out = w_in.shape[1]
    dtype = w_in.dtype
    table = neurons.table.to(dtype).contiguous()
    kernel = gpu_specialise(gpu_loop.backward, neurons.model, numpy_dtype(w_in))
    rec = _rec(w_rec, w_in)
    trace = w_in.new_zeros((n_batch, n_steps, n_out))
    spiking = spikes is not None
    if spiking:
        sp = (spikes.step, spikes.unit, spikes.x1.to(dtype), spikes.x2.to(dtype),
              spike_dldt.to(dtype).contiguous(), spikes.count)
        gv = w_in.new_zeros((0, 0, 0))
    else:
        none_i, none_f, none_count = no_spikes(n_batch, w_in)
        sp = (none_i, none_i, none_f, none_f, none_f, none_count)
        gv = grad_v.detach().to(dtype).contiguous()
    launch(kernel, n_batch, n_out, w_in, rec, table, 1.0 / neurons.dt, n_steps, spiking,
            *sp, gv, float(min_vdot), trace)
    flat_trace = trace.reshape(-1, n_out)
    grad_w_in = x.reshape(-1, n_in).t() @ flat_trace
    grad_w_rec = None
    if w_rec is not None and spiking:
        grad_w_rec = spikes.to_dense(dtype=dtype).reshape(-1, n_out).t() @ flat_trace
    elif w_rec is not None:
        grad_w_rec = torch.zeros_like(rec)
    in_dldt = None
    if want_input_timing:
        following = torch.cat([trace[:, 1:], trace.new_zeros((n_batch, 1, n_out))], dim=1)
        in_dldt = x * (((following - trace) / neurons.dt) @ w_in.t())
    return LayerGrads(grad_w_in, grad_w_rec, in_dldt, trace if want_trace else None)
