"""Compiled, event-driven CPU drivers for layers with dense synapses, for any neuron model.

The forward and EventProp backward below are *templates*: they call the neuron model's
step maths through the names ``model_*`` that :func:`spikeforge.engine.specialise`
binds per model (see :mod:`spikeforge.neurons.base` for the contract). Everything here
is about synapses and bookkeeping; nothing here knows a neuron's equations.

Per time step n the forward does, for each neuron j (state v, i, a; factor column
``p = factor_column(table, j)``):
  1. ``v, i, a = integrate(v, i, a, p)`` (exact decay over the step)
  2. spiking layers: if ``margin(v, i, a, p) >= 0`` record the spike (n, j and the
     model's ``spike_values``) and apply ``reset``; readouts: record v
  3. input arrival: ``i += value * W_in[unit, :]`` for every input event at n, plus the
     precomputed dense currents (the GEMM formulation for dense input) and
     ``W_rec[k, :]`` for every own spike k of step n

The backward walks the steps in reverse with adjoints (lv, li, la) at t_n^+ and undoes
3, 2, 1:
  3'. dW[unit, :] += value * li ; an input event's timing sensitivity is
      dL/dt = value * sum_j W[unit, j] (li_j[n+1] - li_j[n]) / dt
      (moving the event from step n to n + 1 changes L by exactly
      value * W . (li[n+1] - li[n]); its continuous-time limit
      li / tau_syn - lv / tau_mem is a small difference of two large terms which, on a
      1 ms grid, is biased enough to flip gradients over long windows -- see
      benchmarks/gradient_fidelity.py). Own spikes feed back through W_rec the same way.
  2'. spiking: at each spike, the model's EventProp ``jump`` with the spike's total
      timing sensitivity and ``max(jump_denominator, min_vdot)``; readouts:
      lv += dL/dV[n]
  1'. ``lv, li, la = adjoint_integrate(lv, li, la, p)``
Weights are stored [pre, post] so a presynaptic row is contiguous. Batches run in
parallel (prange); weight gradients are accumulated per chunk and summed by the caller.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, fastmath=True)
def timing_drive(lam_i_next, lam_i, inv_dt, drive):
    """drive_j = (li_j[n+1] - li_j[n]) / dt: dL/dt of a unit current jump into neuron j
    at step n (an input event's timing sensitivity is value * W[row] . drive)."""
    for j in range(drive.shape[0]):
        drive[j] = (lam_i_next[j] - lam_i[j]) * inv_dt


@njit(cache=True, fastmath=True)
def input_step_backward(
    p, p_start, n, in_step, in_unit, in_value, w_in, lam_i, drive, grad_w, in_dldt, want_timing,
):  # fmt: skip
    """Undo the arrival of the input events at step n (walking p downwards); returns the
    new p. ``drive`` must hold :func:`timing_drive` of this step when ``want_timing``."""
    n_out = w_in.shape[1]
    while p >= p_start and in_step[p] == n:
        row = in_unit[p]
        val = in_value[p]
        for j in range(n_out):
            grad_w[row, j] += val * lam_i[j]
        if want_timing:
            acc = 0.0
            for j in range(n_out):
                acc += w_in[row, j] * drive[j]
            in_dldt[p] = val * acc
        p -= 1
    return p


@njit(cache=True, fastmath=True)
def own_spikes_timing(
    k, k_start, n, sp_step, sp_unit, sp_dldt, w_rec, has_rec, lam_i, drive, grad_w_rec,
    step_dldt,
):  # fmt: skip
    """Walk the layer's own spikes at step n (k downwards): recurrent weight gradient and
    each spike's total timing sensitivity (consumers' plus its recurrent synapses') into
    ``step_dldt[k_hi - k]``; ``drive`` must hold this step's timing drive. Returns new k."""
    k_hi = k
    n_out = lam_i.shape[0]
    while k >= k_start and sp_step[k] == n:
        row = sp_unit[k]
        acc = 0.0
        if has_rec:
            for j in range(n_out):
                grad_w_rec[row, j] += lam_i[j]
                acc += w_rec[row, j] * drive[j]
        step_dldt[k_hi - k] = acc + sp_dldt[k]
        k -= 1
    return k


@njit(cache=True)
def layer_shape(in_ptr, w_in, w_rec):
    """(batch size, number of neurons, whether there are recurrent weights)."""
    return in_ptr.shape[0] - 1, w_in.shape[1], w_rec.shape[0] > 0


@njit(cache=True)
def zero_state(n_out, like):
    """Three zeroed per-neuron vectors [N] in ``like``'s dtype: the state (v, i, a) of one
    sample, or its adjoints (lam_v, lam_i, lam_a)."""
    return (np.zeros(n_out, dtype=like.dtype), np.zeros(n_out, dtype=like.dtype),
            np.zeros(n_out, dtype=like.dtype))


@njit(cache=True)
def start_sample_backward(b, lam_v, lam_i, lam_a, in_ptr, in_step, sp_ptr, n_steps):
    """Zero the adjoints for sample b of a backward pass; returns (p_start, p, k_start, k):
    the first and last input event (before ``n_steps``) and own spike of the sample."""
    lam_v[:] = 0.0
    lam_i[:] = 0.0
    lam_a[:] = 0.0
    p_start = in_ptr[b]
    p = skip_late_inputs(in_ptr[b + 1] - 1, p_start, in_step, n_steps)
    return p_start, p, sp_ptr[b], sp_ptr[b + 1] - 1


@njit(cache=True, fastmath=True)
def skip_late_inputs(p, p_start, in_step, n_steps):
    """Index of the last input event before ``n_steps`` (walking p downwards)."""
    while p >= p_start and in_step[p] >= n_steps:
        p -= 1
    return p


TEMPLATE_HELPERS = ("neuron_step", "spike_jumps", "adjoint_step")
"""Template helpers shared by the drivers here and in :mod:`delay_loop`; ``specialise``
binds them per model like the drivers themselves (and inlines them)."""


def neuron_step(v, i_syn, aux, table, spiking, b, n, count, out_step, out_unit, out_x1,
                out_x2, v_out):  # fmt: skip
    """(Template helper.) Steps 1-2 of the forward for every neuron of sample b at step n:
    integrate, then threshold/record/reset (spiking) or record V (readout). Spikes go to
    the padded buffers while they fit; returns the new spike count of the sample."""
    cap = out_step.shape[1]
    n_out = v.shape[0]
    for j in range(n_out):  # branch-free, so it vectorises
        v[j], i_syn[j], aux[j] = model_integrate(v[j], i_syn[j], aux[j], factor_column(table, j))  # noqa: F821
    if not spiking:
        for j in range(n_out):
            v_out[b, n, j] = v[j]
        return count
    for j in range(n_out):
        pj = factor_column(table, j)  # noqa: F821
        if model_margin(v[j], i_syn[j], aux[j], pj) >= 0.0:  # noqa: F821
            if count < cap:
                x1, x2 = model_spike_values(v[j], i_syn[j], aux[j], pj)  # noqa: F821
                out_step[b, count] = n
                out_unit[b, count] = j
                out_x1[b, count] = x1
                if N_SPIKE_VALUES > 1:  # noqa: F821
                    out_x2[b, count] = x2
            count += 1
            v[j], i_syn[j], aux[j] = model_reset(v[j], i_syn[j], aux[j], 1.0, 1.0, pj)  # noqa: F821
    return count


def spike_jumps(k_hi, k, sp_unit, sp_x1, sp_x2, step_dldt, table, min_vdot, lam_v, lam_i,
                lam_a):  # fmt: skip
    """(Template helper.) Step 2' of the backward: the model's EventProp jump for the
    spikes k_hi down to k + 1 of one step (``step_dldt[k_hi - q]``: spike q's total
    timing sensitivity)."""
    for q in range(k_hi, k, -1):
        j = sp_unit[q]
        pj = factor_column(table, j)  # noqa: F821
        x2 = sp_x2[q] if N_SPIKE_VALUES > 1 else 0.0  # noqa: F821
        denom = max(model_jump_denominator(sp_x1[q], x2, pj), min_vdot)  # noqa: F821
        lam_v[j], lam_i[j], lam_a[j] = model_jump(  # noqa: F821
            lam_v[j], lam_i[j], lam_a[j], sp_x1[q], x2, step_dldt[k_hi - q], denom, pj)


def adjoint_step(lam_v, lam_i, lam_a, table):
    """(Template helper.) Step 1': the transposed step map for every neuron."""
    for j in range(lam_v.shape[0]):
        lam_v[j], lam_i[j], lam_a[j] = model_adjoint_integrate(  # noqa: F821
            lam_v[j], lam_i[j], lam_a[j], factor_column(table, j))  # noqa: F821


def forward(
    in_ptr, in_step, in_unit, in_value, w_in, w_rec, in_current, table, n_steps, spiking,
    out_step, out_unit, out_x1, out_x2, out_count, v_out,
):  # fmt: skip
    """Simulate a layer for a batch (template: bound to a neuron model by ``specialise``).

    Input arrives as events (scattered rows of ``w_in`` [in, N]) and/or as dense currents
    ``in_current`` [B, T, N] (shape (0, 0, 0) when unused). ``table`` [K, N] is the
    model's factor table. Spiking layers write at most ``cap`` spikes per sample into the
    padded [B, cap] buffers ``out_*`` (``out_x2`` has shape (B, 0) for one-value models)
    and the true count into ``out_count`` (re-run with a larger cap if it exceeds it);
    readouts write V after integration into ``v_out`` [B, T, N].
    """
    n_batch, n_out, has_rec = layer_shape(in_ptr, w_in, w_rec)
    cap = out_step.shape[1]
    has_current = in_current.shape[0] > 0
    for b in prange(n_batch):
        v, i_syn, aux = zero_state(n_out, w_in)
        p, p_end, count = in_ptr[b], in_ptr[b + 1], 0
        for n in range(n_steps):
            first, count = count, neuron_step(v, i_syn, aux, table, spiking, b, n, count,
                                              out_step, out_unit, out_x1, out_x2, v_out)
            while p < p_end and in_step[p] == n:
                row = in_unit[p]
                val = in_value[p]
                for j in range(n_out):
                    i_syn[j] += val * w_in[row, j]
                p += 1
            if has_current:
                for j in range(n_out):
                    i_syn[j] += in_current[b, n, j]
            if has_rec:
                for k in range(first, min(count, cap)):
                    row = out_unit[b, k]
                    for j in range(n_out):
                        i_syn[j] += w_rec[row, j]
        out_count[b] = count


def backward(
    in_ptr, in_step, in_unit, in_value, w_in, w_rec, table, inv_dt, n_steps, spiking,
    sp_ptr, sp_step, sp_unit, sp_x1, sp_x2, sp_dldt, grad_v, min_vdot,
    grad_w_in_parts, grad_w_rec_parts, in_dldt, want_timing, lam_i_trace, want_trace,
):  # fmt: skip
    """EventProp adjoint of :func:`forward` (template; see the module docstring).

    Spiking layers: ``sp_*`` are the layer's own spikes (flat CSR, sorted by step within
    a sample) with the model's per-spike values and ``sp_dldt`` the timing sensitivity
    each received from its consumers. Readouts: ``grad_v`` [B, T, N] = dL/dV.
    Outputs: per-chunk weight gradients, ``in_dldt`` [E_in] timing sensitivity of each
    input event (if want_timing) and ``lam_i_trace`` [B, T, N] (if want_trace).
    """
    n_batch, n_out, has_rec = layer_shape(in_ptr, w_in, w_rec)
    n_chunks = grad_w_in_parts.shape[0]
    for c in prange(n_chunks):
        grad_w_in = grad_w_in_parts[c]
        grad_w_rec = grad_w_rec_parts[c]
        lam_v, lam_i, lam_a = zero_state(n_out, w_in)
        lam_i_next = np.zeros(n_out, dtype=w_in.dtype)
        step_dldt = np.zeros(n_out, dtype=w_in.dtype)
        drive = np.zeros(n_out, dtype=w_in.dtype)
        for b in range(c, n_batch, n_chunks):
            lam_i_next[:] = 0.0
            p_start, p, k_start, k = start_sample_backward(b, lam_v, lam_i, lam_a, in_ptr,
                                                           in_step, sp_ptr, n_steps)
            for n in range(n_steps - 1, -1, -1):
                has_input = p >= p_start and in_step[p] == n
                has_spikes = spiking and k >= k_start and sp_step[k] == n
                if (has_input and want_timing) or (has_spikes and has_rec):
                    timing_drive(lam_i_next, lam_i, inv_dt, drive)
                if has_input:
                    p = input_step_backward(
                        p, p_start, n, in_step, in_unit, in_value, w_in, lam_i, drive,
                        grad_w_in, in_dldt, want_timing,
                    )  # fmt: skip
                if want_trace:
                    for j in range(n_out):
                        lam_i_trace[b, n, j] = lam_i[j]
                if spiking:
                    k_hi = k
                    k = own_spikes_timing(k, k_start, n, sp_step, sp_unit, sp_dldt, w_rec,
                                          has_rec, lam_i, drive, grad_w_rec, step_dldt)
                    spike_jumps(k_hi, k, sp_unit, sp_x1, sp_x2, step_dldt, table, min_vdot,
                                lam_v, lam_i, lam_a)
                else:
                    for j in range(n_out):
                        lam_v[j] += grad_v[b, n, j]
                lam_i_next[:] = lam_i
                adjoint_step(lam_v, lam_i, lam_a, table)
