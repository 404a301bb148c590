"""Compiled (Numba) event-driven kernels for adaptive LIF (ALIF) layers: forward and
EventProp adjoint. :mod:`alif_reference` is the dense NumPy version of the same maths.

Model (ALGORITHMS.md section 1), per neuron, dimensionless, times in ms::

    tau_m V' = -V + I,   tau_s I' = -I,   tau_a A' = -A
    spike when V >= theta + beta A;  then V <- 0 and A <- A + 1

Per time step n the forward does, as the LIF kernels:
  1. V = a_m V + g I ; I = a_s I ; A = a_a A      (exact decays)
  2. V >= theta + beta A -> record spike (n, j, I_j, A_j), V = 0, A += 1
  3. I += input events at n (+ recurrent rows of the spikes of step n)

Adjoint derivation. State x = (V, I, A), spike condition f(x) = V - theta - beta A = 0,
jump x+ = T(x-) = (0, I, A + 1). Let Vdot etc. be the time derivatives just before (-) /
after (+) the spike and D = dL/dt_k the spike's timing sensitivity through its
consumers (next layer, recurrent synapses, losses). A shift dt_k of the spike changes
the post-spike state by (dT/dx xdot- - xdot+) dt_k = (-I/tau_m, 0, 1/tau_a) dt_k, and
dt_k = -(grad f . dx-) / (grad f . xdot-), with grad f = (1, 0, -beta) and

    tau_m grad f . xdot- = I - theta - beta A- + beta A- tau_m / tau_a   (=: tau_m Q)

Requiring lam- . dx- = lam+ . dx+ + D dt_k for all dx- gives, with
B = -lam_V+ I / tau_m + lam_A+ / tau_a + D:

    lam_V- = -B / Q = (lam_V+ I - lam_A+ tau_m / tau_a - tau_m D) / (tau_m Q)
    lam_I- = lam_I+
    lam_A- = lam_A+ + beta B / Q = lam_A+ - beta lam_V-

For beta = 0 this is exactly the LIF jump of :mod:`cpu_kernels`; as there, I is the
current at the start of the step (the stored I / a_s). Between events the adjoints evolve
by the transposed step map (lam_I = a_s lam_I + g lam_V; lam_V = a_m lam_V; lam_A = a_a
lam_A); input arrival, its timing sensitivity w (lam_I[n+1] - lam_I[n]) / dt (the
discrete form of w (lam_I / tau_s - lam_V / tau_m), see :mod:`cpu_kernels`) and the weight
gradients dW += value * lam_I are as for LIF because inputs do not touch A. tau_m Q is
clipped below at ``min_vdot``.
Weights are [pre, post]; batches run in parallel (prange), weight gradients per chunk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spikeforge.engine.cpu_kernels import (
    _adjoint_step,
    _input_step_backward,
    _own_spikes_timing,
    _timing_drive,
)


@njit(cache=True, parallel=True)
def alif_forward(
    in_ptr, in_step, in_unit, in_value, w_in, w_rec,
    alpha_mem, alpha_syn, syn_gain, threshold, alpha_adapt, beta, n_steps,
    out_step, out_unit, out_isyn, out_adapt, out_count,
):  # fmt: skip
    """Simulate ALIF layers; spikes go to padded [B, cap] buffers (``out_adapt``: A just
    before the spike's jump). ``out_count[b]`` > cap means: re-run with a larger cap."""
    n_batch = in_ptr.shape[0] - 1
    n_out = w_in.shape[1]
    cap = out_step.shape[1]
    has_rec = w_rec.shape[0] > 0
    for b in prange(n_batch):
        v = np.zeros(n_out, dtype=w_in.dtype)
        i_syn = np.zeros(n_out, dtype=w_in.dtype)
        adapt = np.zeros(n_out, dtype=w_in.dtype)
        p = in_ptr[b]
        p_end = in_ptr[b + 1]
        count = 0
        for n in range(n_steps):
            for j in range(n_out):
                v[j] = alpha_mem[j] * v[j] + syn_gain[j] * i_syn[j]
                i_syn[j] = alpha_syn[j] * i_syn[j]
                adapt[j] = alpha_adapt[j] * adapt[j]
            first = count
            for j in range(n_out):
                if v[j] >= threshold[j] + beta[j] * adapt[j]:
                    if count < cap:
                        out_step[b, count] = n
                        out_unit[b, count] = j
                        out_isyn[b, count] = i_syn[j]
                        out_adapt[b, count] = adapt[j]
                    count += 1
                    v[j] = 0.0
                    adapt[j] += 1.0
            while p < p_end and in_step[p] == n:
                row = in_unit[p]
                val = in_value[p]
                for j in range(n_out):
                    i_syn[j] += val * w_in[row, j]
                p += 1
            if has_rec:
                last = min(count, cap)
                for k in range(first, last):
                    row = out_unit[b, k]
                    for j in range(n_out):
                        i_syn[j] += w_rec[row, j]
        out_count[b] = count


@njit(cache=True, parallel=True)
def alif_backward(
    in_ptr, in_step, in_unit, in_value, w_in, w_rec,
    alpha_mem, alpha_syn, syn_gain, threshold, alpha_adapt, beta,
    tau_mem, inv_dt, tau_adapt, n_steps,
    sp_ptr, sp_step, sp_unit, sp_isyn, sp_adapt, sp_dldt, min_vdot,
    grad_w_in_parts, grad_w_rec_parts, in_dldt, want_timing, lam_i_trace, want_trace,
):  # fmt: skip
    """EventProp adjoint of :func:`alif_forward` (see the module docstring).

    sp_*: the layer's own spikes (flat CSR, sorted by step within a sample) with I and A
    at each spike and ``sp_dldt`` their timing sensitivities from consumers.
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
        lam_a = np.zeros(n_out, dtype=w_in.dtype)
        lam_i_next = np.zeros(n_out, dtype=w_in.dtype)
        drive = np.zeros(n_out, dtype=w_in.dtype)
        step_dldt = np.zeros(n_out, dtype=w_in.dtype)
        for b in range(c, n_batch, n_chunks):
            lam_v[:] = 0.0
            lam_i[:] = 0.0
            lam_a[:] = 0.0
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
                for q in range(k_hi, k, -1):
                    j = sp_unit[q]
                    i_k = sp_isyn[q] / alpha_syn[j]  # the current at the start of the step
                    a_k = sp_adapt[q]
                    ratio = tau_mem[j] / tau_adapt[j]
                    denom = max(i_k - threshold[j] - beta[j] * a_k + beta[j] * a_k * ratio,
                                min_vdot)
                    jumped = (
                        lam_v[j] * i_k - lam_a[j] * ratio - tau_mem[j] * step_dldt[k_hi - q]
                    ) / denom
                    lam_a[j] = lam_a[j] - beta[j] * jumped
                    lam_v[j] = jumped
                if want_trace:
                    for j in range(n_out):
                        lam_i_trace[b, n, j] = lam_i[j]
                _adjoint_step(lam_v, lam_i, lam_i_next, alpha_mem, alpha_syn, syn_gain)
                for j in range(n_out):
                    lam_a[j] = alpha_adapt[j] * lam_a[j]
