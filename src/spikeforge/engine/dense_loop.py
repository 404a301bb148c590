"""One dense time loop for any neuron model, on NumPy arrays or torch tensors.

This is the slow, obviously correct oracle the compiled drivers are tested against
(NumPy), the CUDA path of the EventProp layers (torch tensors on the device: a handful
of batched [B, N] operations per step) and the forward of surrogate-gradient BPTT
(torch, differentiated by autograd with a surrogate spike function). All three run the
same model maths (:mod:`spikeforge.neurons`) in the same operation order as the
compiled drivers (:mod:`event_loop`).

Shapes: input currents ``[B, T, N]`` (x @ W_in, arriving at each step), weights
``[pre, post]``, factor tables ``[K, N]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikeforge.neurons.base import NeuronModel


@dataclass(frozen=True)
class ArrayOps:
    """The few operations whose spelling differs between NumPy and torch."""

    zeros: Callable[[tuple, Any], Any]           # zeros(shape, like)
    where: Callable[[Any, Any, Any], Any]        # where(mask, a, b)
    to_float: Callable[[Any, Any], Any]          # bool mask -> like's float dtype
    clip_below: Callable[[Any, float], Any]      # max(x, m) elementwise
    stack: Callable[[list], Any]                 # stack along axis 1
    unbind: Callable[[Any], Any]                 # iterate over axis 1


NUMPY = ArrayOps(
    zeros=lambda shape, like: np.zeros(shape, dtype=like.dtype),
    where=np.where,
    to_float=lambda mask, like: mask.astype(like.dtype),
    clip_below=np.maximum,
    stack=lambda items: np.stack(items, axis=1),
    unbind=lambda x: (x[:, n] for n in range(x.shape[1])),
)
TORCH = ArrayOps(
    zeros=lambda shape, like: like.new_zeros(shape),
    where=torch.where,
    to_float=lambda mask, like: mask.to(like.dtype),
    clip_below=lambda x, m: torch.clamp(x, min=m),
    stack=lambda items: torch.stack(items, dim=1),
    # unbind, never x[:, n]: indexing inside the loop makes torch's backward O(T^2)
    unbind=lambda x: x.unbind(1),
)


def ops_for(x) -> ArrayOps:
    """:data:`TORCH` for tensors, :data:`NUMPY` for arrays."""
    return TORCH if isinstance(x, torch.Tensor) else NUMPY


@dataclass
class DenseRun:
    """Output of :func:`simulate`: ``out`` [B, T, N] (spikes in {0, 1}, or V for a
    readout) and, for spiking layers with ``record_values``, the model's per-spike
    values ``x1``, ``x2`` [B, T, N] (0 where there is no spike)."""

    out: Any
    x1: Any = None
    x2: Any = None


def simulate(model: NeuronModel, table, currents, w_rec=None, spiking: bool = True,
             spike_fn: Callable | None = None, detach: Callable | None = None,
             record_values: bool = True) -> DenseRun:
    """Run a layer over all steps (see the module docstring for shapes).

    Args:
        model, table: the neuron model and its factor table ``[K, N]``.
        currents: input currents ``[B, T, N]`` arriving at each step.
        w_rec: recurrent weights ``[N, N]`` (pre, post) or None.
        spiking: threshold and reset (else record V: a readout).
        spike_fn: margin -> spikes; default the Heaviside ``margin >= 0`` (BPTT passes
            a surrogate-gradient spike function).
        detach: applied to the spikes that drive the reset (BPTT: ``Tensor.detach`` to
            stop the gradient through the reset); default identity.
        record_values: also return the per-spike values the EventProp adjoint needs.
    """
    ops = ops_for(currents)
    n_batch, _, n_out = currents.shape
    v = ops.zeros((n_batch, n_out), currents)
    i_syn = ops.zeros((n_batch, n_out), currents)
    aux = ops.zeros((n_batch, n_out), currents)
    spike = spike_fn or (lambda m: ops.to_float(m >= 0, m))
    detach = detach or (lambda s: s)
    outs, x1s, x2s = [], [], []
    for current in ops.unbind(currents):
        v, i_syn, aux = model.integrate(v, i_syn, aux, table)
        if spiking:
            s = spike(model.margin(v, i_syn, aux, table))
            if record_values:
                x1, x2 = model.spike_values(v, i_syn, aux, table)
                x1s.append(x1 * s)
                x2s.append(x2 * s)
            v, i_syn, aux = model.reset(v, i_syn, aux, s, detach(s), table)
            outs.append(s)
            i_syn = i_syn + current
            if w_rec is not None:
                i_syn = i_syn + s @ w_rec
        else:
            outs.append(v)
            i_syn = i_syn + current
    if not (spiking and record_values):
        return DenseRun(ops.stack(outs))
    return DenseRun(ops.stack(outs), ops.stack(x1s), ops.stack(x2s))


def spike_jumps(model: NeuronModel, table, fired, adjoints: tuple, x1, x2, dldt,
                min_vdot: float) -> tuple:
    """The model's EventProp jump applied where ``fired`` ([B, N] bool): adjoints
    ``(lam_v, lam_i, lam_a)`` with the per-spike values ``x1``, ``x2`` and each spike's
    total timing sensitivity ``dldt`` (all [B, N])."""
    ops = ops_for(x1)
    denom = ops.clip_below(model.jump_denominator(x1, x2, table), min_vdot)
    jumped = model.jump(*adjoints, x1, x2, dldt, denom, table)
    return tuple(ops.where(fired, new, old) for new, old in zip(jumped, adjoints, strict=True))


@dataclass
class DenseGrads:
    """Output of :func:`adjoint`: grad_w_in [in, N], grad_w_rec [N, N] (pre, post) or
    None, in_dldt [B, T, in] (x times the timing sensitivity of an input at each entry)
    or None, and lam_i_trace [B, T, N] (dL/dI after each step's input; gives
    dL/dx = lam_i_trace @ W_in^T)."""

    grad_w_in: Any
    grad_w_rec: Any
    in_dldt: Any
    lam_i_trace: Any


def adjoint(model: NeuronModel, table, dt: float, x, w_in, w_rec=None, spikes=None,
            x1=None, x2=None, spike_dldt=None, grad_v=None, min_vdot: float = 1e-2,
            want_input_timing: bool = False) -> DenseGrads:
    """EventProp backward of :func:`simulate` for dense input ``x`` [B, T, in].

    Spiking layers pass their ``spikes`` [B, T, N], the per-spike values ``x1``, ``x2``
    and ``spike_dldt`` [B, T, N], the timing sensitivity each spike received from its
    consumers; readouts pass ``grad_v`` = dL/dV [B, T, N]. ``dt`` in ms.
    """
    ops = ops_for(x)
    n_batch, n_steps, n_in = x.shape
    n_out = w_in.shape[1]
    lam_v = ops.zeros((n_batch, n_out), x)
    lam_i = ops.zeros((n_batch, n_out), x)
    lam_a = ops.zeros((n_batch, n_out), x)
    lam_i_next = ops.zeros((n_batch, n_out), x)
    trace = ops.zeros((n_batch, n_steps, n_out), x)
    drive_trace = ops.zeros((n_batch, n_steps, n_out), x) if want_input_timing else None
    grad_w_rec = None if w_rec is None else ops.zeros(tuple(w_rec.shape), x)
    x2 = x1 if x2 is None else x2
    needs_drive = want_input_timing or (spikes is not None and w_rec is not None)
    for n in range(n_steps - 1, -1, -1):
        trace[:, n] = lam_i
        if needs_drive:
            # (lam_I[n+1] - lam_I[n]) / dt: the exact one-step timing drive (see event_loop)
            drive = (lam_i_next - lam_i) / dt
            if drive_trace is not None:
                drive_trace[:, n] = drive
        if spikes is not None:
            fired = spikes[:, n] > 0
            dldt = spike_dldt[:, n]
            if w_rec is not None:
                grad_w_rec += ops.to_float(fired, x).T @ lam_i
                dldt = dldt + drive @ w_rec.T
            lam_v, lam_i, lam_a = spike_jumps(model, table, fired, (lam_v, lam_i, lam_a),
                                              x1[:, n], x2[:, n], dldt, min_vdot)
        else:
            lam_v = lam_v + grad_v[:, n]
        if needs_drive:
            lam_i_next = lam_i
        lam_v, lam_i, lam_a = model.adjoint_integrate(lam_v, lam_i, lam_a, table)
    grad_w_in = x.reshape(-1, n_in).T @ trace.reshape(-1, n_out)
    in_dldt = None if drive_trace is None else x * (drive_trace @ w_in.T)
    return DenseGrads(grad_w_in, grad_w_rec, in_dldt, trace)
