"""Fused CUDA kernels (numba.cuda) for layers with dense synapses, for any neuron model.

Like :mod:`event_loop`, the forward and EventProp backward below are *templates*: they
call a neuron model's step maths through the names ``model_*``, ``factor_column`` and the
constants ``N_SPIKE_VALUES`` and ``STATE_DTYPE`` (the compute dtype of the thread-local
state) that :func:`spikeforge.engine.gpu_specialise.gpu_specialise` binds per model and
dtype before compiling them with ``numba.cuda.jit``. Nothing here knows a neuron's
equations; the maths are the same functions the CPU drivers compile with ``njit``.

Launch: one block per sample (``grid = B``), threads over neurons; thread ``t`` owns
neurons ``t, t + blockDim, ...`` (at most :data:`MAX_PER_THREAD`, so a layer has at most
:data:`MAX_NEURONS` neurons). The whole time loop is one launch per layer; each
neuron's state (v, i, a) and adjoints (lam_v, lam_i, lam_a) stay in thread-local arrays
(registers). Feed-forward input currents for all steps are one GEMM done before the
launch (``currents = x @ W_in``, [B, T, N]).

Forward, per step n and neuron j (the CPU drivers' order)::

    v, i, a = integrate(v, i, a, p_j)
    spiking: if margin >= 0: slot = atomic_add(count, 1); record (n, j, spike_values) in
             the sample's padded buffers [B, cap] when slot < cap; reset
    readout: v_out[b, n, j] = v
    i += currents[b, n, j]
    barrier; recurrent: read count; barrier; i += W_rec[unit_k, j] for this step's spikes

The barrier per step keeps each sample's buffer ordered by step (within a step the order
is the atomic counter's, not by neuron); its true spike count goes to ``out_count``
(the caller re-runs with a larger ``cap`` when a sample overflowed, as on the CPU).

Backward, per step n in reverse (adjoints at t_n^+), the transpose of the above::

    lam_i_trace[b, n, j] = lam_i        (dW_in = x^T trace, dW_rec = S^T trace and the
                                         inputs' timing are GEMMs done by the caller)
    recurrent spikes at n: drive_j = (lam_i_next - lam_i) / dt into shared memory; barrier
    at each own spike k of neuron j: dL/dt_k = W_rec[j, :] . drive + sp_dldt[k];
             the model's jump with max(jump_denominator, min_vdot)
    readout: lam_v += grad_v[b, n, j]
    lam_v, lam_i, lam_a = adjoint_integrate(lam_v, lam_i, lam_a, p_j)

Memory inside the kernels is O(spikes) (the padded buffers) plus O(N) per block; the
backward writes the [B, T, N] trace its caller turns into weight gradients with GEMMs.
"""

from __future__ import annotations

from numba import cuda, int32

MAX_THREADS = 1024
"""Threads per block (CUDA's limit)."""
MAX_PER_THREAD = 4
"""Neurons one thread owns at most."""
MAX_NEURONS = MAX_THREADS * MAX_PER_THREAD
"""Largest layer the kernels run (the backward's shared memory holds one value per
neuron: 32 KiB in float64, within CUDA's 48 KiB of static shared memory)."""


def threads_for(n_out: int) -> int:
    """Threads per block for a layer of ``n_out`` neurons: a multiple of 32 (a warp),
    enough for :data:`MAX_PER_THREAD` neurons each, at most :data:`MAX_THREADS`."""
    wanted = -(-n_out // MAX_PER_THREAD) if n_out > MAX_THREADS else n_out
    return min(MAX_THREADS, max(32, -(-wanted // 32) * 32))


@cuda.jit(device=True)
def zero_locals(a, b, c, d):
    """Zero four thread-local state arrays (pass one twice for three)."""
    for r in range(a.shape[0]):
        a[r] = 0.0
        b[r] = 0.0
        c[r] = 0.0
        d[r] = 0.0


TEMPLATE_HELPERS = ("integrate_neurons", "spike_jump", "adjoint_neurons")
"""Device-function templates the kernels here and in :mod:`gpu_delay_loop` share; bound
to a model's maths by ``gpu_specialise`` like the kernels (in this order: a helper may
call the ones before it)."""


def integrate_neurons(v, i_syn, aux, table, spiking, b, n, count, out_step, out_unit,
                      out_x1, out_x2, v_out):  # fmt: skip
    """(Template helper.) One step of this thread's neurons: integrate; spiking: record a
    threshold crossing into the sample's buffers (slot from the block's atomic counter
    ``count``, kept when below ``cap``) and reset; readout: write V into ``v_out``."""
    t = cuda.threadIdx.x
    stride = cuda.blockDim.x
    n_out = table.shape[1]
    cap = out_step.shape[1]
    for r in range(MAX_PER_THREAD):
        j = t + r * stride
        if j < n_out:
            pj = factor_column(table, j)  # noqa: F821
            vj, ij, aj = model_integrate(v[r], i_syn[r], aux[r], pj)  # noqa: F821
            if spiking:
                if model_margin(vj, ij, aj, pj) >= 0.0:  # noqa: F821
                    slot = cuda.atomic.add(count, 0, 1)
                    if slot < cap:
                        x1, x2 = model_spike_values(vj, ij, aj, pj)  # noqa: F821
                        out_step[b, slot] = n
                        out_unit[b, slot] = j
                        out_x1[b, slot] = x1
                        if N_SPIKE_VALUES > 1:  # noqa: F821
                            out_x2[b, slot] = x2
                    vj, ij, aj = model_reset(vj, ij, aj, 1.0, 1.0, pj)  # noqa: F821
            else:
                v_out[b, n, j] = vj
            v[r] = vj
            i_syn[r] = ij
            aux[r] = aj


def spike_jump(lam_v, lam_i, lam_a, j, b, q, total, table, sp_x1, sp_x2, min_vdot):
    """(Template helper.) The model's EventProp jump at spike ``q`` of sample b (neuron j,
    owned by this thread) with total timing sensitivity ``total``."""
    r = j // cuda.blockDim.x
    pj = factor_column(table, j)  # noqa: F821
    x1 = sp_x1[b, q]
    x2 = sp_x2[b, q] if N_SPIKE_VALUES > 1 else 0.0  # noqa: F821
    denom = max(model_jump_denominator(x1, x2, pj), min_vdot)  # noqa: F821
    lam_v[r], lam_i[r], lam_a[r] = model_jump(  # noqa: F821
        lam_v[r], lam_i[r], lam_a[r], x1, x2, total, denom, pj)


def adjoint_neurons(lam_v, lam_i, lam_a, lam_i_next, table, spiking, grad_v, b, n):
    """(Template helper.) The end of a backward step for this thread's neurons: readouts
    add dL/dV of step n; keep lam_I in ``lam_i_next``; apply the transposed step map."""
    t = cuda.threadIdx.x
    stride = cuda.blockDim.x
    n_out = table.shape[1]
    for r in range(MAX_PER_THREAD):
        j = t + r * stride
        if j < n_out:
            if not spiking:
                lam_v[r] += grad_v[b, n, j]
            lam_i_next[r] = lam_i[r]
            lam_v[r], lam_i[r], lam_a[r] = model_adjoint_integrate(  # noqa: F821
                lam_v[r], lam_i[r], lam_a[r], factor_column(table, j))  # noqa: F821


def forward(currents, w_rec, table, n_steps, spiking, out_step, out_unit, out_x1, out_x2,
            out_count, v_out):  # fmt: skip
    """Simulate one sample per block (template: bound to a neuron model by
    ``gpu_specialise``).

    ``currents`` [B, T, N] input currents per step, ``w_rec`` [N, N] (pre, post) or
    [0, N], ``table`` [K, N] the model's factor table. Spiking layers write at most
    ``cap`` spikes per sample into ``out_step``/``out_unit``/``out_x1``/``out_x2``
    [B, cap] (``out_x2`` [B, 0] for one-value models) and the true count into
    ``out_count`` [B]; readouts write V after integration into ``v_out`` [B, T, N].
    """
    b = cuda.blockIdx.x
    t = cuda.threadIdx.x
    stride = cuda.blockDim.x
    n_out = table.shape[1]
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
    first = 0
    for n in range(n_steps):
        integrate_neurons(v, i_syn, aux, table, spiking, b, n, count, out_step, out_unit,
                          out_x1, out_x2, v_out)
        for r in range(MAX_PER_THREAD):
            j = t + r * stride
            if j < n_out:
                i_syn[r] += currents[b, n, j]
        if spiking:
            cuda.syncthreads()  # the step's spikes are all recorded
            total = count[0]
            if has_rec:
                cuda.syncthreads()  # everyone read the count before the next step adds
                for k in range(first, min(total, cap)):
                    row = out_unit[b, k]
                    for r in range(MAX_PER_THREAD):
                        j = t + r * stride
                        if j < n_out:
                            i_syn[r] += w_rec[row, j]
            first = total
    if spiking and t == 0:
        out_count[b] = count[0]


def backward(w_rec, table, inv_dt, n_steps, spiking, sp_step, sp_unit, sp_x1, sp_x2,
             sp_dldt, sp_count, grad_v, min_vdot, lam_i_trace):  # fmt: skip
    """EventProp adjoint of :func:`forward`, one sample per block (template).

    Spiking layers: ``sp_*`` [B, cap] are the layer's own spikes as :func:`forward`
    recorded them (``sp_count`` [B] how many), ``sp_dldt`` [B, cap] the timing
    sensitivity each received from its consumers. Readouts: ``grad_v`` [B, T, N] = dL/dV.
    Output: ``lam_i_trace`` [B, T, N], dL/dI after each step's input.
    """
    b = cuda.blockIdx.x
    t = cuda.threadIdx.x
    stride = cuda.blockDim.x
    n_out = table.shape[1]
    has_rec = w_rec.shape[0] > 0
    drive = cuda.shared.array(MAX_NEURONS, STATE_DTYPE)  # noqa: F821
    lam_v = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    lam_i = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    lam_a = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    lam_i_next = cuda.local.array(MAX_PER_THREAD, STATE_DTYPE)  # noqa: F821
    zero_locals(lam_v, lam_i, lam_a, lam_i_next)
    k = min(sp_count[b], sp_step.shape[1]) - 1 if spiking else -1
    for n in range(n_steps - 1, -1, -1):
        k_hi = k
        while k >= 0 and sp_step[b, k] == n:
            k -= 1
        has_spikes = k_hi > k  # the same in every thread of the block
        for r in range(MAX_PER_THREAD):
            j = t + r * stride
            if j < n_out:
                lam_i_trace[b, n, j] = lam_i[r]
                if has_spikes and has_rec:
                    drive[j] = (lam_i_next[r] - lam_i[r]) * inv_dt
        if has_spikes:
            if has_rec:
                cuda.syncthreads()  # the step's drive is complete
            for q in range(k_hi, k, -1):
                j = sp_unit[b, q]
                if j % stride == t:
                    total = 0.0
                    if has_rec:
                        for m in range(n_out):
                            total += w_rec[j, m] * drive[m]
                    total += sp_dldt[b, q]
                    spike_jump(lam_v, lam_i, lam_a, j, b, q, total, table, sp_x1, sp_x2,
                               min_vdot)
            if has_rec:
                cuda.syncthreads()  # everyone is done with drive before it is rewritten
        adjoint_neurons(lam_v, lam_i, lam_a, lam_i_next, table, spiking, grad_v, b, n)
