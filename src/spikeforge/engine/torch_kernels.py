"""Device-agnostic (torch) forward and EventProp backward for LIF, ALIF and LI layers:
the CUDA path.

The compiled Numba kernels (:mod:`cpu_kernels`) walk sparse events on the CPU. On a GPU
the work per time step is a handful of batched [B, N] tensor operations, so this path
runs the same maths as :mod:`reference` (same operation order per step, documented in
:mod:`cpu_kernels`) with torch ops on whatever device the tensors live on: one GEMM for
all input currents, a loop over time steps of fused element-wise ops, and GEMMs for the
weight gradients. It is selected automatically for CUDA tensors and can be forced on the
CPU (``backend="torch"``) so that tests compare it with the reference there.

Memory: the forward keeps the spike mask (bool) and the synaptic current at spike steps
for [B, T, N] -- 5 bytes per neuron-step, against the 3-4 float traces per neuron-step
that surrogate-gradient BPTT keeps -- and no voltage trace.

Weights use torch's layout ``[post, pre]``; all per-neuron parameters are tensors [N].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spikeforge.engine.layers import NeuronArrays


@dataclass
class DeviceNeurons:
    """Per-neuron parameters [N] on one device (see :class:`LIFParams`)."""

    alpha_mem: torch.Tensor
    alpha_syn: torch.Tensor
    syn_gain: torch.Tensor
    threshold: torch.Tensor
    tau_mem: torch.Tensor
    tau_syn: torch.Tensor
    dt: float  # ms

    @classmethod
    def from_arrays(cls, arrays: NeuronArrays, like: torch.Tensor) -> DeviceNeurons:
        """The engine's per-neuron NumPy parameters moved to ``like``'s device and dtype."""
        def move(values) -> torch.Tensor:
            return torch.as_tensor(values).to(device=like.device, dtype=like.dtype)

        return cls(move(arrays.alpha_mem), move(arrays.alpha_syn), move(arrays.syn_gain),
                   move(arrays.threshold), move(arrays.tau_mem), move(arrays.tau_syn),
                   arrays.dt)


@dataclass
class DeviceAdaptation:
    """Threshold adaptation of an ALIF layer, per neuron [N] on one device: decay
    exp(-dt/tau_adapt), strength beta and tau_adapt (ms). The threshold is
    theta + beta * A; A jumps by 1 at each spike (see :mod:`alif_kernels`)."""

    alpha_adapt: torch.Tensor
    beta: torch.Tensor
    tau_adapt: torch.Tensor

    @classmethod
    def from_arrays(cls, arrays, like: torch.Tensor) -> DeviceAdaptation:
        """An :class:`~spikeforge.engine.alif_layers.AdaptArrays` moved to ``like``'s
        device and dtype."""
        def move(values) -> torch.Tensor:
            return torch.as_tensor(values).to(device=like.device, dtype=like.dtype)

        return cls(move(arrays.alpha_adapt), move(arrays.beta), move(arrays.tau_adapt))


def lif_forward(
    x: torch.Tensor, w_in: torch.Tensor, w_rec: torch.Tensor | None, neurons: DeviceNeurons,
    adapt: DeviceAdaptation | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """x [B, T, in] -> (spikes [B, T, N] bool, isyn [B, T, N]: current at each spike,
    else 0, and for ALIF ``a_spk`` [B, T, N]: adaptation A just before each spike's
    jump, else 0; None without ``adapt``)."""
    n_batch, n_steps, _ = x.shape
    currents = torch.matmul(x, w_in.t())
    v = x.new_zeros(n_batch, w_in.shape[0])
    i_syn = torch.zeros_like(v)
    spikes = torch.zeros(n_batch, n_steps, w_in.shape[0], dtype=torch.bool, device=x.device)
    isyn = torch.zeros_like(currents)
    level = torch.zeros_like(v) if adapt is not None else None
    a_spk = torch.zeros_like(currents) if adapt is not None else None
    for n, current in enumerate(currents.unbind(1)):
        v = neurons.alpha_mem * v + neurons.syn_gain * i_syn
        i_syn = neurons.alpha_syn * i_syn
        if level is None:
            fired = v >= neurons.threshold
        else:
            level = adapt.alpha_adapt * level
            fired = v >= neurons.threshold + adapt.beta * level
            a_spk[:, n] = torch.where(fired, level, 0.0)
            level = level + fired.to(x.dtype)
        spikes[:, n] = fired
        isyn[:, n] = torch.where(fired, i_syn, 0.0)
        v = v.masked_fill(fired, 0.0)
        i_syn = i_syn + current
        if w_rec is not None:
            i_syn = i_syn + fired.to(x.dtype) @ w_rec.t()
    return spikes, isyn, a_spk


def li_forward(x: torch.Tensor, w_in: torch.Tensor, neurons: DeviceNeurons) -> torch.Tensor:
    """x [B, T, in] -> V [B, T, N] recorded after each step's integration."""
    currents = torch.matmul(x, w_in.t())
    v = x.new_zeros(x.shape[0], w_in.shape[0])
    i_syn = torch.zeros_like(v)
    v_out = torch.empty_like(currents)
    for n, current in enumerate(currents.unbind(1)):
        v = neurons.alpha_mem * v + neurons.syn_gain * i_syn
        i_syn = neurons.alpha_syn * i_syn + current
        v_out[:, n] = v
    return v_out


@dataclass
class DeviceGrads:
    """grad_w_in [N, in], grad_w_rec [N, N] or None, in_dldt [B, T, in] (timing
    sensitivity x * dL/dt of each input entry) or None, lam_i_trace [B, T, N]."""

    grad_w_in: torch.Tensor
    grad_w_rec: torch.Tensor | None
    in_dldt: torch.Tensor | None
    lam_i_trace: torch.Tensor


def _drive(lam_i_next, lam_i, neurons: DeviceNeurons) -> torch.Tensor:
    """dL/dt of a unit current jump at step n: (lam_I[n+1] - lam_I[n]) / dt (the discrete
    form of lam_I / tau_syn - lam_V / tau_mem; see :mod:`cpu_kernels`)."""
    return (lam_i_next - lam_i) / neurons.dt


def lif_backward(
    x: torch.Tensor,
    w_in: torch.Tensor,
    w_rec: torch.Tensor | None,
    spikes: torch.Tensor,
    isyn: torch.Tensor,
    spike_dldt: torch.Tensor,
    neurons: DeviceNeurons,
    min_vdot: float,
    want_input_timing: bool,
    adapt: DeviceAdaptation | None = None,
    a_spk: torch.Tensor | None = None,
) -> DeviceGrads:
    """EventProp adjoint of :func:`lif_forward`; ``spike_dldt`` [B, T, N] is dL/dt_k at
    each spike (ignored elsewhere). With ``adapt`` (ALIF) the adaptation adjoint λ_A joins
    the jump as in :func:`spikeforge.engine.alif_reference.alif_backward`; ``a_spk`` is
    the forward's third output."""
    n_batch, n_steps, _ = x.shape
    lam_v = x.new_zeros(n_batch, w_in.shape[0])
    lam_i = torch.zeros_like(lam_v)
    lam_a = torch.zeros_like(lam_v) if adapt is not None else None
    lam_i_next = torch.zeros_like(lam_v)
    trace = torch.empty_like(isyn)
    drive_trace = torch.empty_like(isyn) if want_input_timing else None
    grad_w_rec = None if w_rec is None else torch.zeros_like(w_rec)
    for n in range(n_steps - 1, -1, -1):
        drive = _drive(lam_i_next, lam_i, neurons)
        trace[:, n] = lam_i
        if drive_trace is not None:
            drive_trace[:, n] = drive
        fired = spikes[:, n]
        dldt = spike_dldt[:, n]
        if w_rec is not None:
            grad_w_rec += lam_i.t() @ fired.to(x.dtype)
            dldt = dldt + drive @ w_rec
        i_k = isyn[:, n] / neurons.alpha_syn  # the current at the start of the step
        if lam_a is None:
            denom = torch.clamp(i_k - neurons.threshold, min=min_vdot)
            lam_v = torch.where(fired, (lam_v * i_k - neurons.tau_mem * dldt) / denom, lam_v)
        else:
            a_k, ratio = a_spk[:, n], neurons.tau_mem / adapt.tau_adapt
            denom = torch.clamp(
                i_k - neurons.threshold - adapt.beta * a_k + adapt.beta * a_k * ratio,
                min=min_vdot,
            )
            jumped = (lam_v * i_k - lam_a * ratio - neurons.tau_mem * dldt) / denom
            lam_a = torch.where(fired, lam_a - adapt.beta * jumped, lam_a)
            lam_v = torch.where(fired, jumped, lam_v)
            lam_a = adapt.alpha_adapt * lam_a
        lam_i_next = lam_i
        lam_i = neurons.alpha_syn * lam_i + neurons.syn_gain * lam_v
        lam_v = neurons.alpha_mem * lam_v
    return _finish(x, w_in, trace, drive_trace, grad_w_rec)


def li_backward(
    x: torch.Tensor, w_in: torch.Tensor, grad_v: torch.Tensor, neurons: DeviceNeurons,
    want_input_timing: bool,
) -> DeviceGrads:
    """Adjoint of :func:`li_forward` for the forcing ``grad_v`` = dL/dV [B, T, N]."""
    lam_v = x.new_zeros(x.shape[0], w_in.shape[0])
    lam_i = torch.zeros_like(lam_v)
    lam_i_next = torch.zeros_like(lam_v)
    trace = torch.empty_like(grad_v)
    drive_trace = torch.empty_like(grad_v) if want_input_timing else None
    for n in range(x.shape[1] - 1, -1, -1):
        trace[:, n] = lam_i
        if drive_trace is not None:
            drive_trace[:, n] = _drive(lam_i_next, lam_i, neurons)
        lam_v = lam_v + grad_v[:, n]
        lam_i_next = lam_i
        lam_i = neurons.alpha_syn * lam_i + neurons.syn_gain * lam_v
        lam_v = neurons.alpha_mem * lam_v
    return _finish(x, w_in, trace, drive_trace, None)


def _finish(x, w_in, trace, drive_trace, grad_w_rec) -> DeviceGrads:
    """Weight gradient as one GEMM over all (sample, step) rows; input timing likewise."""
    rows = x.reshape(-1, x.shape[-1])
    grad_w_in = trace.reshape(-1, trace.shape[-1]).t() @ rows
    in_dldt = None if drive_trace is None else x * torch.matmul(drive_trace, w_in)
    return DeviceGrads(grad_w_in, grad_w_rec, in_dldt, trace)
