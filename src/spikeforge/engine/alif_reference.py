"""Reference (dense NumPy) forward and EventProp adjoint of an adaptive LIF (ALIF) layer.

Slow and obviously correct; :mod:`alif_kernels` does the same on sparse events and
tests compare the two. The maths and its derivation are in :mod:`alif_kernels`.
Shapes: x [B, T, in], weights [pre, post], per-neuron parameter vectors [N].
"""

from __future__ import annotations

import numpy as np


def alif_forward(x, w_in, w_rec, alpha_mem, alpha_syn, syn_gain, threshold, alpha_adapt, beta):
    """x [B, T, in] -> (spikes [B, T, N] in {0,1}, I at each spike [B, T, N],
    A just before each spike's jump [B, T, N]) (zeros where no spike)."""
    n_batch, n_steps, _ = x.shape
    n_out = w_in.shape[1]
    h = x @ w_in
    v = np.zeros((n_batch, n_out), dtype=w_in.dtype)
    i_syn = np.zeros_like(v)
    adapt = np.zeros_like(v)
    spikes = np.zeros((n_batch, n_steps, n_out), dtype=w_in.dtype)
    isyn = np.zeros_like(spikes)
    a_spk = np.zeros_like(spikes)
    for n in range(n_steps):
        v = alpha_mem * v + syn_gain * i_syn
        i_syn = alpha_syn * i_syn
        adapt = alpha_adapt * adapt
        fired = v >= threshold + beta * adapt
        spikes[:, n] = fired
        isyn[:, n] = np.where(fired, i_syn, 0.0)
        a_spk[:, n] = np.where(fired, adapt, 0.0)
        v = np.where(fired, 0.0, v)
        adapt = adapt + fired
        i_syn = i_syn + h[:, n]
        if w_rec is not None:
            i_syn = i_syn + spikes[:, n] @ w_rec
    return spikes, isyn, a_spk


def alif_backward(
    x, w_in, w_rec, spikes, isyn, a_spk, dldt_out, alpha_mem, alpha_syn, syn_gain, threshold,
    alpha_adapt, beta, tau_mem, dt, tau_adapt, min_vdot,
):  # fmt: skip
    """EventProp adjoint of :func:`alif_forward`; dldt_out [B, T, N] is the timing
    sensitivity each own spike received from consumers.

    Returns (grad_w_in [in, N], grad_w_rec [N, N] or None, in_dldt [B, T, in],
    lam_i_trace [B, T, N]).
    """
    n_batch, n_steps, _ = x.shape
    n_out = w_in.shape[1]
    lam_v = np.zeros((n_batch, n_out), dtype=w_in.dtype)
    lam_i = np.zeros_like(lam_v)
    lam_a = np.zeros_like(lam_v)
    lam_i_next = np.zeros_like(lam_v)
    grad_w_in = np.zeros_like(w_in)
    grad_w_rec = None if w_rec is None else np.zeros_like(w_rec)
    in_dldt = np.zeros_like(x)
    trace = np.zeros((n_batch, n_steps, n_out), dtype=w_in.dtype)
    for n in range(n_steps - 1, -1, -1):
        u = (lam_i_next - lam_i) / dt  # see spikeforge.engine.reference._timing_kernel
        grad_w_in += x[:, n].T @ lam_i
        in_dldt[:, n] = x[:, n] * (u @ w_in.T)
        dldt = dldt_out[:, n].copy()
        if w_rec is not None:
            grad_w_rec += spikes[:, n].T @ lam_i
            dldt += u @ w_rec.T
        fired = spikes[:, n] > 0
        i_k, a_k = isyn[:, n] / alpha_syn, a_spk[:, n]  # I at the start of the step
        denom = np.maximum(
            i_k - threshold - beta * a_k + beta * a_k * tau_mem / tau_adapt, min_vdot
        )
        jumped = (lam_v * i_k - lam_a * tau_mem / tau_adapt - tau_mem * dldt) / denom
        lam_a = np.where(fired, lam_a - beta * jumped, lam_a)
        lam_v = np.where(fired, jumped, lam_v)
        trace[:, n] = lam_i
        lam_i_next = lam_i
        lam_i = alpha_syn * lam_i + syn_gain * lam_v
        lam_v = alpha_mem * lam_v
        lam_a = alpha_adapt * lam_a
    return grad_w_in, grad_w_rec, in_dldt, trace
