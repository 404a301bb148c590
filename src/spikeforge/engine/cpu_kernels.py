"""Compiled (Numba) event-driven CPU kernels for LIF / LI layers: forward and EventProp adjoint.

Conventions shared with :mod:`spikeforge.engine.reference` (which is the slow, obviously
correct version of the same maths; tests compare the two):

Per time step n the forward does, in this order,
  1. exact integration over the step:  V = a_m V + g I ;  I = a_s I
  2. (LIF) threshold: V >= theta -> record spike (n, j, I_j), V = 0
     (LI) record V[n]
  3. input arrival: I += sum over input events at n of value * W_in[unit, :]
                    (+ W_rec[j, :] for every own spike j at n)

The backward walks the steps in reverse with adjoints lam_V = dL/dV, lam_I = dL/dI at
t_n^+ and undoes these operations (3, 2, 1):
  3'. dW[unit, :] += value * lam_I ; an input spike's timing sensitivity is
      dL/dt = value * sum_j W[unit, j] (lam_I_j[n+1] - lam_I_j[n]) / dt
      (lam_I[n] is lam_I at t_n^+: moving the event from step n to n+1 changes L by
      exactly value * W . (lam_I[n+1] - lam_I[n]); its continuous-time limit is the
      EventProp lam_I / tau_syn - lam_V / tau_mem, which is a small difference of two
      large terms and, evaluated on a 1 ms grid, is biased enough to flip the sign of
      gradients over long windows -- see benchmarks/gradient_fidelity.py)
  2'. (LIF) for a spike of j with total timing sensitivity dL/dt_k:
      lam_V_j <- (lam_V_j I_k - tau_mem_j dL/dt_k) / max(I_k - theta_j, min_vdot)
      with I_k = I at the start of the step (the current that drove V over threshold
      in it; the stored current at the spike is after the step's decay: I_k = I / a_s)
      (LI)  lam_V += dL/dV[n]
  1'. lam_I = a_s lam_I + g lam_V ; lam_V = a_m lam_V
Weights are stored [pre, post] so a presynaptic row is contiguous.
Batches run in parallel (prange); weight gradients are accumulated per chunk and summed.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True, fastmath=True)
def lif_forward(
    in_ptr, in_step, in_unit, in_value, w_in, w_rec, in_current,
    alpha_mem, alpha_syn, syn_gain, threshold, n_steps,
    out_step, out_unit, out_isyn, out_count,
):  # fmt: skip
    """Simulate LIF layers for a batch; spikes go to padded [B, cap] buffers.

    Input arrives as events (scattered rows of ``w_in``) and/or as precomputed dense
    currents ``in_current`` [B, T, N] (the GEMM formulation for dense input; shape
    (0, 0, 0) when unused), added at the same point of the step.

    ``out_count[b]`` is the true spike count of sample b; if it exceeds ``cap`` the
    caller must re-run with a larger buffer (spikes past ``cap`` are not stored).
    """
    n_batch = in_ptr.shape[0] - 1
    n_out = w_in.shape[1]
    cap = out_step.shape[1]
    has_rec = w_rec.shape[0] > 0
    has_current = in_current.shape[0] > 0
    for b in prange(n_batch):
        v = np.zeros(n_out, dtype=w_in.dtype)
        i_syn = np.zeros(n_out, dtype=w_in.dtype)
        p = in_ptr[b]
        p_end = in_ptr[b + 1]
        count = 0
        for n in range(n_steps):
            for j in range(n_out):
                v[j] = alpha_mem[j] * v[j] + syn_gain[j] * i_syn[j]
                i_syn[j] = alpha_syn[j] * i_syn[j]
            first = count
            for j in range(n_out):
                if v[j] >= threshold[j]:
                    if count < cap:
                        out_step[b, count] = n
                        out_unit[b, count] = j
                        out_isyn[b, count] = i_syn[j]
                    count += 1
                    v[j] = 0.0
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
                last = min(count, cap)
                for k in range(first, last):
                    row = out_unit[b, k]
                    for j in range(n_out):
                        i_syn[j] += w_rec[row, j]
        out_count[b] = count


@njit(cache=True, parallel=True, fastmath=True)
def li_forward(
    in_ptr, in_step, in_unit, in_value, w_in, in_current, alpha_mem, alpha_syn, syn_gain,
    n_steps, v_out,
):  # fmt: skip
    """Simulate leaky-integrator readouts; writes V after integration at every step into
    ``v_out`` [B, T, n_out]. Inputs as in :func:`lif_forward`."""
    n_batch = in_ptr.shape[0] - 1
    n_out = w_in.shape[1]
    has_current = in_current.shape[0] > 0
    for b in prange(n_batch):
        v = np.zeros(n_out, dtype=w_in.dtype)
        i_syn = np.zeros(n_out, dtype=w_in.dtype)
        p = in_ptr[b]
        p_end = in_ptr[b + 1]
        for n in range(n_steps):
            for j in range(n_out):
                v[j] = alpha_mem[j] * v[j] + syn_gain[j] * i_syn[j]
                i_syn[j] = alpha_syn[j] * i_syn[j]
                v_out[b, n, j] = v[j]
            while p < p_end and in_step[p] == n:
                row = in_unit[p]
                val = in_value[p]
                for j in range(n_out):
                    i_syn[j] += val * w_in[row, j]
                p += 1
            if has_current:
                for j in range(n_out):
                    i_syn[j] += in_current[b, n, j]


@njit(cache=True, fastmath=True)
def _timing_drive(lam_i_next, lam_i, inv_dt, drive):
    """drive_j = (lam_I_j[n+1] - lam_I_j[n]) / dt: dL/dt of a unit current jump into
    neuron j at step n (so an input event's timing sensitivity is val * W[row] . drive)."""
    for j in range(drive.shape[0]):
        drive[j] = (lam_i_next[j] - lam_i[j]) * inv_dt


@njit(cache=True, fastmath=True)
def _adjoint_step(lam_v, lam_i, lam_i_next, alpha_mem, alpha_syn, syn_gain):
    """Undo one step's integration (1'); ``lam_i_next`` keeps lam_I at t_n^+ for the
    timing drive of step n - 1."""
    for j in range(lam_v.shape[0]):
        lam_i_next[j] = lam_i[j]
        lam_i[j] = alpha_syn[j] * lam_i[j] + syn_gain[j] * lam_v[j]
        lam_v[j] = alpha_mem[j] * lam_v[j]


@njit(cache=True, fastmath=True)
def _own_spikes_timing(
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


@njit(cache=True, fastmath=True)
def _lif_jumps(k_hi, k, sp_unit, sp_isyn, alpha_syn, threshold, tau_mem, step_dldt, lam_v,
               min_vdot):  # fmt: skip
    """EventProp jump (2') of lam_V for the spikes k_hi down to k + 1 of one step."""
    for q in range(k_hi, k, -1):
        row = sp_unit[q]
        i_k = sp_isyn[q] / alpha_syn[row]  # the current at the start of the step
        denom = max(i_k - threshold[row], min_vdot)
        lam_v[row] = (lam_v[row] * i_k - tau_mem[row] * step_dldt[k_hi - q]) / denom


@njit(cache=True, fastmath=True)
def _input_step_backward(
    p, p_start, n, in_step, in_unit, in_value, w_in, lam_i, drive, grad_w, in_dldt, want_timing,
):  # fmt: skip
    """Undo the arrival of the input events at step n (walking p downwards); returns new p.
    ``drive`` must hold :func:`_timing_drive` of this step when ``want_timing``."""
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


@njit(cache=True, parallel=True, fastmath=True)
def lif_backward(
    in_ptr, in_step, in_unit, in_value, w_in, w_rec,
    alpha_mem, alpha_syn, syn_gain, threshold, tau_mem, inv_dt, n_steps,
    sp_ptr, sp_step, sp_unit, sp_isyn, sp_dldt, min_vdot,
    grad_w_in_parts, grad_w_rec_parts, in_dldt, want_timing, lam_i_trace, want_trace,
):  # fmt: skip
    """EventProp adjoint of :func:`lif_forward` (see module docstring).

    sp_*: the layer's own spikes (flat CSR, sorted by step within a sample) and
    ``sp_dldt`` the timing sensitivity dL/dt_k each received from its consumers.
    Outputs: per-chunk weight gradients, ``in_dldt`` [E_in] timing sensitivity of each
    input event (if want_timing) and ``lam_i_trace`` [B, T, n_out] (if want_trace).
    """
    n_batch = in_ptr.shape[0] - 1
    n_out = w_in.shape[1]
    n_chunks = grad_w_in_parts.shape[0]
    has_rec = w_rec.shape[0] > 0
    for c in prange(n_chunks):
        grad_w_in = grad_w_in_parts[c]
        grad_w_rec = grad_w_rec_parts[c]
        lam_v = np.zeros(n_out, dtype=w_in.dtype)
        lam_i = np.zeros(n_out, dtype=w_in.dtype)
        lam_i_next = np.zeros(n_out, dtype=w_in.dtype)
        step_dldt = np.zeros(n_out, dtype=w_in.dtype)
        drive = np.zeros(n_out, dtype=w_in.dtype)
        for b in range(c, n_batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            lam_i_next[:] = 0.0
            p_start = in_ptr[b]
            p = in_ptr[b + 1] - 1
            while p >= p_start and in_step[p] >= n_steps:
                p -= 1
            k_start = sp_ptr[b]
            k = sp_ptr[b + 1] - 1
            for n in range(n_steps - 1, -1, -1):
                has_input = p >= p_start and in_step[p] == n
                has_spikes = k >= k_start and sp_step[k] == n
                if (has_input and want_timing) or (has_spikes and has_rec):
                    _timing_drive(lam_i_next, lam_i, inv_dt, drive)
                if has_input:
                    p = _input_step_backward(
                        p, p_start, n, in_step, in_unit, in_value, w_in, lam_i, drive,
                        grad_w_in, in_dldt, want_timing,
                    )  # fmt: skip
                k_hi = k
                k = _own_spikes_timing(k, k_start, n, sp_step, sp_unit, sp_dldt, w_rec,
                                       has_rec, lam_i, drive, grad_w_rec, step_dldt)
                _lif_jumps(k_hi, k, sp_unit, sp_isyn, alpha_syn, threshold, tau_mem, step_dldt,
                           lam_v, min_vdot)
                if want_trace:
                    for j in range(n_out):
                        lam_i_trace[b, n, j] = lam_i[j]
                _adjoint_step(lam_v, lam_i, lam_i_next, alpha_mem, alpha_syn, syn_gain)


@njit(cache=True, parallel=True, fastmath=True)
def li_backward(
    in_ptr, in_step, in_unit, in_value, w_in, alpha_mem, alpha_syn, syn_gain,
    inv_dt, n_steps, grad_v, grad_w_in_parts, in_dldt, want_timing,
    lam_i_trace, want_trace,
):  # fmt: skip
    """Adjoint of :func:`li_forward` for the forcing ``grad_v`` = dL/dV [B, T, n_out]."""
    n_batch = in_ptr.shape[0] - 1
    n_out = w_in.shape[1]
    n_chunks = grad_w_in_parts.shape[0]
    for c in prange(n_chunks):
        grad_w_in = grad_w_in_parts[c]
        lam_v = np.zeros(n_out, dtype=w_in.dtype)
        lam_i = np.zeros(n_out, dtype=w_in.dtype)
        lam_i_next = np.zeros(n_out, dtype=w_in.dtype)
        drive = np.zeros(n_out, dtype=w_in.dtype)
        for b in range(c, n_batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            lam_i_next[:] = 0.0
            p_start = in_ptr[b]
            p = in_ptr[b + 1] - 1
            while p >= p_start and in_step[p] >= n_steps:
                p -= 1
            for n in range(n_steps - 1, -1, -1):
                if p >= p_start and in_step[p] == n:
                    if want_timing:
                        _timing_drive(lam_i_next, lam_i, inv_dt, drive)
                    p = _input_step_backward(
                        p, p_start, n, in_step, in_unit, in_value, w_in, lam_i, drive,
                        grad_w_in, in_dldt, want_timing,
                    )  # fmt: skip
                if want_trace:
                    for j in range(n_out):
                        lam_i_trace[b, n, j] = lam_i[j]
                for j in range(n_out):
                    lam_v[j] += grad_v[b, n, j]
                _adjoint_step(lam_v, lam_i, lam_i_next, alpha_mem, alpha_syn, syn_gain)
