"""Compiled (Numba) event-driven kernels for LIF / LI layers with per-synapse delays.

Same maths and operation order as :mod:`spikeforge.engine.delay_reference` (read its
docstring for the delay model and the EventProp delay gradient). Delayed currents are
scattered into a per-sample ring buffer ``ring[L, N]`` with L = max_q + 2 slots: an event
at step n writes slots (n + q) % L and (n + q + 1) % L, and step n drains slot n % L after
its threshold. The backward keeps the last L values of lam_I (tr[m] for m >= n) in a
second ring, so each event reads the adjoint at its arrival steps in O(N).
Weights, integer delays ``dq`` and fractions ``df`` are stored [pre, post].
Batches run in parallel (prange); gradients are accumulated per chunk and summed.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spikeforge.engine.cpu_kernels import _lif_jumps


@njit(cache=True)
def _scatter(ring, n, row, val, w, dq, df):
    """Schedule the currents of one event (presynaptic ``row``, amplitude ``val``, step n)."""
    n_slots = ring.shape[0]
    for j in range(w.shape[1]):
        c = val * w[row, j]
        m = n + dq[row, j]
        f = df[row, j]
        ring[m % n_slots, j] += (1.0 - f) * c
        if f != 0.0:
            ring[(m + 1) % n_slots, j] += f * c


@njit(cache=True, parallel=True)
def delayed_forward(
    in_ptr, in_step, in_unit, in_value, w_in, dq_in, df_in, w_rec, dq_rec, df_rec,
    alpha_mem, alpha_syn, syn_gain, threshold, n_steps, n_slots, spiking,
    out_step, out_unit, out_isyn, out_count, v_out,
):  # fmt: skip
    """Simulate delayed LIF (``spiking``: spikes into padded [B, cap] buffers, true counts
    in ``out_count``) or LI layers (V after integration into ``v_out`` [B, T, N])."""
    n_batch = in_ptr.shape[0] - 1
    n_out = w_in.shape[1]
    cap = out_step.shape[1]
    has_rec = w_rec.shape[0] > 0
    for b in prange(n_batch):
        v = np.zeros(n_out, dtype=w_in.dtype)
        i_syn = np.zeros(n_out, dtype=w_in.dtype)
        ring = np.zeros((n_slots, n_out), dtype=w_in.dtype)
        p = in_ptr[b]
        p_end = in_ptr[b + 1]
        count = 0
        for n in range(n_steps):
            for j in range(n_out):
                v[j] = alpha_mem[j] * v[j] + syn_gain[j] * i_syn[j]
                i_syn[j] = alpha_syn[j] * i_syn[j]
            first = count
            if spiking:
                for j in range(n_out):
                    if v[j] >= threshold[j]:
                        if count < cap:
                            out_step[b, count] = n
                            out_unit[b, count] = j
                            out_isyn[b, count] = i_syn[j]
                        count += 1
                        v[j] = 0.0
            else:
                for j in range(n_out):
                    v_out[b, n, j] = v[j]
            while p < p_end and in_step[p] == n:
                _scatter(ring, n, in_unit[p], in_value[p], w_in, dq_in, df_in)
                p += 1
            if has_rec:
                for k in range(first, min(count, cap)):
                    _scatter(ring, n, out_unit[b, k], 1.0, w_rec, dq_rec, df_rec)
            slot = n % n_slots
            for j in range(n_out):
                i_syn[j] += ring[slot, j]
                ring[slot, j] = 0.0
        out_count[b] = count


@njit(cache=True)
def _tr(tr_ring, m, j, n_steps):
    """lam_I just after the arrivals of step m (0 past the window)."""
    if m >= n_steps:
        return 0.0
    return tr_ring[m % tr_ring.shape[0], j]


@njit(cache=True)
def _event_backward(tr_ring, n, row, val, w, dq, df, inv_dt, n_steps, grad_w, grad_d):
    """Accumulate weight and delay gradients of one event; returns its dL/dt."""
    acc = 0.0
    for j in range(w.shape[1]):
        m = n + dq[row, j]
        f = df[row, j]
        a = _tr(tr_ring, m, j, n_steps)
        bb = _tr(tr_ring, m + 1, j, n_steps)
        grad_w[row, j] += val * ((1.0 - f) * a + f * bb)
        sens = val * w[row, j] * (bb - a) * inv_dt
        grad_d[row, j] += sens
        acc += sens
    return acc


@njit(cache=True, parallel=True)
def delayed_backward(
    in_ptr, in_step, in_unit, in_value, w_in, dq_in, df_in, w_rec, dq_rec, df_rec,
    alpha_mem, alpha_syn, syn_gain, threshold, tau_mem, dt, n_steps, n_slots, spiking,
    sp_ptr, sp_step, sp_unit, sp_isyn, sp_dldt, grad_v, min_vdot,
    gw_in_parts, gd_in_parts, gw_rec_parts, gd_rec_parts, in_dldt, want_timing,
    lam_i_trace, want_trace,
):  # fmt: skip
    """EventProp adjoint of :func:`delayed_forward`: per-chunk weight and delay gradients,
    per-input-event timing ``in_dldt`` [E_in] (if want_timing) and the lam_I trace
    [B, T, N] (if want_trace). LIF uses the own spikes ``sp_*`` with consumer timing
    ``sp_dldt``; LI uses ``grad_v`` [B, T, N] = dL/dV."""
    n_batch = in_ptr.shape[0] - 1
    n_out = w_in.shape[1]
    n_chunks = gw_in_parts.shape[0]
    has_rec = w_rec.shape[0] > 0
    inv_dt = 1.0 / dt
    for c in prange(n_chunks):
        lam_v = np.zeros(n_out, dtype=w_in.dtype)
        lam_i = np.zeros(n_out, dtype=w_in.dtype)
        tr_ring = np.zeros((n_slots, n_out), dtype=w_in.dtype)
        step_dldt = np.zeros(n_out, dtype=w_in.dtype)
        for b in range(c, n_batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            p_start = in_ptr[b]
            p = in_ptr[b + 1] - 1
            while p >= p_start and in_step[p] >= n_steps:
                p -= 1
            k_start = sp_ptr[b]
            k = sp_ptr[b + 1] - 1
            for n in range(n_steps - 1, -1, -1):
                slot = n % n_slots
                for j in range(n_out):
                    tr_ring[slot, j] = lam_i[j]
                if want_trace:
                    for j in range(n_out):
                        lam_i_trace[b, n, j] = lam_i[j]
                while p >= p_start and in_step[p] == n:
                    acc = _event_backward(
                        tr_ring, n, in_unit[p], in_value[p], w_in, dq_in, df_in, inv_dt,
                        n_steps, gw_in_parts[c], gd_in_parts[c],
                    )  # fmt: skip
                    if want_timing:
                        in_dldt[p] = acc
                    p -= 1
                if spiking:
                    k_hi = k
                    while k >= k_start and sp_step[k] == n:
                        acc = 0.0
                        if has_rec:
                            acc = _event_backward(
                                tr_ring, n, sp_unit[k], 1.0, w_rec, dq_rec, df_rec, inv_dt,
                                n_steps, gw_rec_parts[c], gd_rec_parts[c],
                            )  # fmt: skip
                        step_dldt[k_hi - k] = acc + sp_dldt[k]
                        k -= 1
                    _lif_jumps(k_hi, k, sp_unit, sp_isyn, alpha_syn, threshold, tau_mem,
                               step_dldt, lam_v, min_vdot)
                else:
                    for j in range(n_out):
                        lam_v[j] += grad_v[b, n, j]
                for j in range(n_out):
                    lam_i[j] = alpha_syn[j] * lam_i[j] + syn_gain[j] * lam_v[j]
                    lam_v[j] = alpha_mem[j] * lam_v[j]
