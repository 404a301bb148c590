"""Fused CUDA kernels (numba.cuda) for layers with per-synapse delays, for any neuron model.

The GPU counterpart of :mod:`delay_loop` (same delay model and EventProp gradient; see
:mod:`delay_reference`), written as templates like :mod:`gpu_loop` and bound to a
neuron model by :func:`spikeforge.engine.gpu_specialise.gpu_specialise`; the per-step
neuron maths are :mod:`gpu_loop`'s helpers (``integrate_neurons``, ``spike_jump``,
``adjoint_neurons``), so nothing here knows a neuron's equations.

Launch: one block per sample, threads over postsynaptic neurons (thread ``t`` owns
neurons ``t, t + blockDim, ...``), the whole time loop in one launch. Input spikes stay
sparse: per-sample CSR arrays (``in_ptr`` [B + 1], ``in_step``/``in_unit`` int32,
``in_value``), sorted by step within a sample, which every thread of the block walks.
Weights, integer delays ``dq`` and fractions ``df`` are [pre, post].

Forward, per step n (the CPU driver's order): integrate / spike / reset; each input
event (row, value) at n adds value * w[row, j] split over ring slots (n + q) % L and
(n + q + 1) % L of column j; after a barrier the step's own spikes do the same through
the recurrent synapses; then slot n % L is drained into I. The ring buffer
``ring`` [B, L, N] (L = max delay in steps + 2) lives in global memory, but each thread
only touches its own columns, so it needs no synchronisation.

Backward, per step n in reverse: lam_I goes into the adjoint ring ``tr_ring`` [B, L, N]
(lam_I just after the arrivals of step m, for m = n .. n + L - 1); each input event at
n adds its weight and delay gradients for this thread's columns with atomic adds
(several samples write the same synapse) and its timing sensitivity dL/dt
(the sum over columns: one atomic add per thread); own spikes at n do the same through
the recurrent synapses, their column sums are reduced in shared memory, and the owning
thread applies the model's jump with that sum plus the consumers' ``sp_dldt``.

Memory is O(spikes) for the buffers plus two [B, L, N] rings, not O(T x N).
"""

from __future__ import annotations

from numba import cuda, int32

from spikeforge.engine.gpu_loop import MAX_NEURONS, MAX_PER_THREAD, zero_locals

TEMPLATE_HELPERS = ("scatter_columns", "event_grad_columns")
"""Device-function templates of this module (bound by ``gpu_specialise``)."""


def scatter_columns(ring, b, n, row, val, w, dq, df):
    """(Template helper.) Schedule the currents of one event (presynaptic ``row``,
    amplitude ``val``, step n) on this thread's columns of the sample's ring."""
    t = cuda.threadIdx.x
    stride = cuda.blockDim.x
    n_slots = ring.shape[1]
    n_out = w.shape[1]
    for r in range(MAX_PER_THREAD):
        j = t + r * stride
        if j < n_out:
            c = val * w[row, j]
            m = n + dq[row, j]
            f = df[row, j]
            ring[b, m % n_slots, j] += (1.0 - f) * c
            if f != 0.0:
                ring[b, (m + 1) % n_slots, j] += f * c


def event_grad_columns(tr_ring, b, n, row, val, w, dq, df, inv_dt, n_steps, grad_w, grad_d):
    """(Template helper.) Weight and delay gradients of one event on this thread's
    columns (atomic adds into ``grad_w``/``grad_d`` [pre, post]); returns this thread's
    share of the event's dL/dt."""
    t = cuda.threadIdx.x
    stride = cuda.blockDim.x
    n_slots = tr_ring.shape[1]
    n_out = w.shape[1]
    acc = 0.0
    for r in range(MAX_PER_THREAD):
        j = t + r * stride
        if j < n_out:
            m = n + dq[row, j]
            f = df[row, j]
            a = tr_ring[b, m % n_slots, j] if m < n_steps else 0.0
            bb = tr_ring[b, (m + 1) % n_slots, j] if m + 1 < n_steps else 0.0
            cuda.atomic.add(grad_w, (row, j), val * ((1.0 - f) * a + f * bb))
            sens = val * w[row, j] * (bb - a) * inv_dt
            cuda.atomic.add(grad_d, (row, j), sens)
            acc += sens
    return acc


def delayed_forward(in_ptr, in_step, in_unit, in_value, w_in, dq_in, df_in, w_rec, dq_rec,
                    df_rec, table, n_steps, spiking, ring, out_step, out_unit, out_x1,
                    out_x2, out_count, v_out):  # fmt: skip
    """Simulate a delayed layer, one sample per block (template).

    ``ring`` [B, L, N] zeros on entry. Spiking layers write at most ``cap`` spikes per
    sample into ``out_*`` [B, cap] and the true count into ``out_count`` [B]; readouts
    write V after integration into ``v_out`` [B, T, N]. Recurrent arrays are [0, N]
    when absent.
    """
    b = cuda.blockIdx.x
    t = cuda.threadIdx.x
    stride = cuda.blockDim.x
    n_out = table.shape[1]
    n_slots = ring.shape[1]
    cap = out_step.shape[1]
    has_rec = w_rec.shape[0] > 0
    count = cuda.shared.array(1, int32)
    if t == 0:
        count[0] = 0
    v = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    i_syn = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    aux = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    zero_locals(v, i_syn, aux, aux)
    cuda.syncthreads()
    p, p_end, first = in_ptr[b], in_ptr[b + 1], 0
    for n in range(n_steps):
        integrate_neurons(v, i_syn, aux, table, spiking, b, n, count,  # noqa: F821
                          out_step, out_unit, out_x1, out_x2, v_out)
        while p < p_end and in_step[p] == n:
            scatter_columns(ring, b, n, in_unit[p], in_value[p], w_in, dq_in,  # noqa: F821
                            df_in)
            p += 1
        if spiking:
            cuda.syncthreads()  # the step's spikes are all recorded
            total = count[0]
            if has_rec:
                cuda.syncthreads()  # everyone read the count before the next step adds
                for k in range(first, min(total, cap)):
                    scatter_columns(ring, b, n, out_unit[b, k], 1.0, w_rec,  # noqa: F821
                                    dq_rec, df_rec)
            first = total
        slot = n % n_slots
        for r in range(MAX_PER_THREAD):
            j = t + r * stride
            if j < n_out:
                i_syn[r] += ring[b, slot, j]
                ring[b, slot, j] = 0.0
    if spiking and t == 0:
        out_count[b] = count[0]


def delayed_backward(in_ptr, in_step, in_unit, in_value, w_in, dq_in, df_in, w_rec, dq_rec,
                     df_rec, table, inv_dt, n_steps, spiking, sp_step, sp_unit, sp_x1,
                     sp_x2, sp_dldt, sp_count, grad_v, min_vdot, tr_ring, gw_in, gd_in,
                     gw_rec, gd_rec, in_dldt, want_timing, lam_i_trace,
                     want_trace):  # fmt: skip
    """EventProp adjoint of :func:`delayed_forward`, one sample per block (template).

    Spiking layers pass their spikes ``sp_*`` [B, cap] (``sp_count`` [B]) and the
    timing sensitivity ``sp_dldt`` [B, cap] each received from its consumers; readouts
    pass ``grad_v`` [B, T, N] = dL/dV. ``tr_ring`` [B, L, N] is scratch. Outputs
    (zeroed by the caller, accumulated over samples): weight gradients and delay
    gradients (per ms) [pre, post], ``in_dldt`` [E_in] (if want_timing) and
    ``lam_i_trace`` [B, T, N] (if want_trace).
    """
    b = cuda.blockIdx.x
    t = cuda.threadIdx.x
    stride = cuda.blockDim.x
    n_out = table.shape[1]
    n_slots = tr_ring.shape[1]
    has_rec = w_rec.shape[0] > 0
    spike_acc = cuda.shared.array(MAX_NEURONS, STATE_DTYPE)  # noqa: F821
    lam_v = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    lam_i = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    lam_a = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    lam_i_next = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    zero_locals(lam_v, lam_i, lam_a, lam_i_next)
    p_start, p = in_ptr[b], in_ptr[b + 1] - 1
    k = min(sp_count[b], sp_step.shape[1]) - 1 if spiking else -1
    for n in range(n_steps - 1, -1, -1):
        slot = n % n_slots
        for r in range(MAX_PER_THREAD):
            j = t + r * stride
            if j < n_out:
                tr_ring[b, slot, j] = lam_i[r]
                if want_trace:
                    lam_i_trace[b, n, j] = lam_i[r]
        while p >= p_start and in_step[p] == n:
            share = event_grad_columns(  # noqa: F821
                tr_ring, b, n, in_unit[p], in_value[p], w_in, dq_in, df_in, inv_dt,
                n_steps, gw_in, gd_in)
            if want_timing:
                cuda.atomic.add(in_dldt, p, share)
            p -= 1
        k_hi = k
        while k >= 0 and sp_step[b, k] == n:
            k -= 1
        if k_hi > k:  # own spikes at step n (the same in every thread)
            if has_rec:
                for q in range(t, k_hi - k, stride):
                    spike_acc[q] = 0.0
                cuda.syncthreads()  # spike_acc is zero
                for q in range(k_hi, k, -1):
                    share = event_grad_columns(  # noqa: F821
                        tr_ring, b, n, sp_unit[b, q], 1.0, w_rec, dq_rec, df_rec, inv_dt,
                        n_steps, gw_rec, gd_rec)
                    cuda.atomic.add(spike_acc, k_hi - q, share)
                cuda.syncthreads()  # every column's share is in
            for q in range(k_hi, k, -1):
                j = sp_unit[b, q]
                if j % stride == t:
                    total = sp_dldt[b, q]
                    if has_rec:
                        total += spike_acc[k_hi - q]
                    spike_jump(lam_v, lam_i, lam_a, j, b, q, total, table,  # noqa: F821
                               sp_x1, sp_x2, min_vdot)
            if has_rec:
                cuda.syncthreads()  # spike_acc is read before the next step zeroes it
        adjoint_neurons(lam_v, lam_i, lam_a, lam_i_next, table, spiking,  # noqa: F821
                        grad_v, b, n)
