"""Compiled event-driven CPU drivers for layers whose synapses have per-synapse delays.

Templates bound to a neuron model by :func:`spikeforge.engine.specialise`, like
:mod:`event_loop`; the delay model and its EventProp gradient are documented in
:mod:`spikeforge.engine.delay_reference` (the dense NumPy oracle). Delayed currents are
scattered into a per-sample ring buffer ``ring[L, N]`` with L = max_q + 2 slots: an
event at step n writes slots (n + q) % L and (n + q + 1) % L, and step n drains slot
n % L after its threshold. The backward keeps the last L values of lam_I (tr[m] for
m >= n) in a second ring, so each event reads the adjoint at its arrival steps in O(N).
Weights, integer delays ``dq`` and fractions ``df`` are stored [pre, post].
Batches run in parallel (prange); gradients are accumulated per chunk and summed.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spikeforge.engine.event_loop import (
    adjoint_step,
    layer_shape,
    neuron_step,
    spike_jumps,
    start_sample_backward,
    zero_state,
)


@njit(cache=True, fastmath=True)
def scatter(ring, n, row, val, w, dq, df):
    """Schedule the currents of one event (presynaptic ``row``, amplitude ``val``, step n)."""
    n_slots = ring.shape[0]
    for j in range(w.shape[1]):
        c = val * w[row, j]
        m = n + dq[row, j]
        f = df[row, j]
        ring[m % n_slots, j] += (1.0 - f) * c
        if f != 0.0:
            ring[(m + 1) % n_slots, j] += f * c


@njit(cache=True, fastmath=True)
def trace_at(tr_ring, m, j, n_steps):
    """lam_I just after the arrivals of step m (0 past the window)."""
    if m >= n_steps:
        return 0.0
    return tr_ring[m % tr_ring.shape[0], j]


@njit(cache=True, fastmath=True)
def event_backward(tr_ring, n, row, val, w, dq, df, inv_dt, n_steps, grad_w, grad_d):
    """Accumulate weight and delay gradients of one event; returns its dL/dt."""
    acc = 0.0
    for j in range(w.shape[1]):
        m = n + dq[row, j]
        f = df[row, j]
        a = trace_at(tr_ring, m, j, n_steps)
        bb = trace_at(tr_ring, m + 1, j, n_steps)
        grad_w[row, j] += val * ((1.0 - f) * a + f * bb)
        sens = val * w[row, j] * (bb - a) * inv_dt
        grad_d[row, j] += sens
        acc += sens
    return acc


def delayed_forward(
    in_ptr, in_step, in_unit, in_value, w_in, dq_in, df_in, w_rec, dq_rec, df_rec,
    table, n_steps, n_slots, spiking, out_step, out_unit, out_x1, out_x2, out_count, v_out,
):  # fmt: skip
    """Simulate a delayed layer (template): spikes into padded [B, cap] buffers with true
    counts in ``out_count`` (spiking), or V after integration into ``v_out`` [B, T, N]."""
    n_batch, n_out, has_rec = layer_shape(in_ptr, w_in, w_rec)
    cap = out_step.shape[1]
    for b in prange(n_batch):
        v, i_syn, aux = zero_state(n_out, w_in)
        ring = np.zeros((n_slots, n_out), dtype=w_in.dtype)
        p, p_end, count = in_ptr[b], in_ptr[b + 1], 0
        for n in range(n_steps):
            first, count = count, neuron_step(v, i_syn, aux, table, spiking, b, n, count,
                                              out_step, out_unit, out_x1, out_x2, v_out)
            while p < p_end and in_step[p] == n:
                scatter(ring, n, in_unit[p], in_value[p], w_in, dq_in, df_in)
                p += 1
            if has_rec:
                for k in range(first, min(count, cap)):
                    scatter(ring, n, out_unit[b, k], 1.0, w_rec, dq_rec, df_rec)
            slot = n % n_slots
            for j in range(n_out):
                i_syn[j] += ring[slot, j]
                ring[slot, j] = 0.0
        out_count[b] = count


def delayed_backward(
    in_ptr, in_step, in_unit, in_value, w_in, dq_in, df_in, w_rec, dq_rec, df_rec,
    table, inv_dt, n_steps, n_slots, spiking,
    sp_ptr, sp_step, sp_unit, sp_x1, sp_x2, sp_dldt, grad_v, min_vdot,
    gw_in_parts, gd_in_parts, gw_rec_parts, gd_rec_parts, in_dldt, want_timing,
    lam_i_trace, want_trace,
):  # fmt: skip
    """EventProp adjoint of :func:`delayed_forward` (template): per-chunk weight and delay
    gradients, per-input-event timing ``in_dldt`` [E_in] (if want_timing) and the lam_I
    trace [B, T, N] (if want_trace). Spiking layers use their own spikes ``sp_*`` with
    consumer timing ``sp_dldt``; readouts use ``grad_v`` [B, T, N] = dL/dV."""
    n_batch, n_out, has_rec = layer_shape(in_ptr, w_in, w_rec)
    n_chunks = gw_in_parts.shape[0]
    for c in prange(n_chunks):
        lam_v, lam_i, lam_a = zero_state(n_out, w_in)
        tr_ring = np.zeros((n_slots, n_out), dtype=w_in.dtype)
        step_dldt = np.zeros(n_out, dtype=w_in.dtype)
        for b in range(c, n_batch, n_chunks):
            p_start, p, k_start, k = start_sample_backward(b, lam_v, lam_i, lam_a, in_ptr,
                                                           in_step, sp_ptr, n_steps)
            for n in range(n_steps - 1, -1, -1):
                slot = n % n_slots
                for j in range(n_out):
                    tr_ring[slot, j] = lam_i[j]
                if want_trace:
                    for j in range(n_out):
                        lam_i_trace[b, n, j] = lam_i[j]
                while p >= p_start and in_step[p] == n:
                    acc = event_backward(
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
                            acc = event_backward(
                                tr_ring, n, sp_unit[k], 1.0, w_rec, dq_rec, df_rec, inv_dt,
                                n_steps, gw_rec_parts[c], gd_rec_parts[c],
                            )  # fmt: skip
                        step_dldt[k_hi - k] = acc + sp_dldt[k]
                        k -= 1
                    spike_jumps(k_hi, k, sp_unit, sp_x1, sp_x2, step_dldt, table, min_vdot,
                                lam_v, lam_i, lam_a)
                else:
                    for j in range(n_out):
                        lam_v[j] += grad_v[b, n, j]
                adjoint_step(lam_v, lam_i, lam_a, table)
