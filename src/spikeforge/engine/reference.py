"""Reference (dense, plain NumPy) forward and EventProp backward for LIF / LI layers.

Slow but obviously correct: one vectorised update over [batch, neurons] per time step,
dense [B, T, N] arrays everywhere. The fast kernels in :mod:`cpu_kernels` implement the
same operation order (documented there) on sparse events; tests compare the two.
"""

from __future__ import annotations

import numpy as np


def lif_forward(x, w_in, w_rec, alpha_mem, alpha_syn, syn_gain, threshold):
    """x [B, T, in] -> (spikes [B, T, N] in {0,1}, isyn_at_spike [B, T, N])."""
    n_batch, n_steps, _ = x.shape
    n_out = w_in.shape[1]
    h = x @ w_in
    v = np.zeros((n_batch, n_out), dtype=w_in.dtype)
    i_syn = np.zeros_like(v)
    spikes = np.zeros((n_batch, n_steps, n_out), dtype=w_in.dtype)
    isyn = np.zeros_like(spikes)
    for n in range(n_steps):
        v = alpha_mem * v + syn_gain * i_syn
        i_syn = alpha_syn * i_syn
        fired = v >= threshold
        spikes[:, n] = fired
        isyn[:, n] = np.where(fired, i_syn, 0.0)
        v = np.where(fired, 0.0, v)
        i_syn = i_syn + h[:, n]
        if w_rec is not None:
            i_syn = i_syn + spikes[:, n] @ w_rec
    return spikes, isyn


def li_forward(x, w_in, alpha_mem, alpha_syn, syn_gain):
    """x [B, T, in] -> V [B, T, N] recorded after each step's integration."""
    n_batch, n_steps, _ = x.shape
    h = x @ w_in
    v = np.zeros((n_batch, w_in.shape[1]), dtype=w_in.dtype)
    i_syn = np.zeros_like(v)
    v_out = np.zeros((n_batch, n_steps, w_in.shape[1]), dtype=w_in.dtype)
    for n in range(n_steps):
        v = alpha_mem * v + syn_gain * i_syn
        i_syn = alpha_syn * i_syn
        v_out[:, n] = v
        i_syn = i_syn + h[:, n]
    return v_out


def _timing_kernel(lam_i_next, lam_i, dt):
    """dL/dt of a unit current jump at step n: (lam_I[n+1] - lam_I[n]) / dt (see
    :mod:`cpu_kernels` for why the discrete difference and not lam_I/tau_s - lam_V/tau_m)."""
    return (lam_i_next - lam_i) / dt


def lif_backward(
    x, w_in, w_rec, spikes, isyn, dldt_out, alpha_mem, alpha_syn, syn_gain, threshold,
    tau_mem, dt, min_vdot,
):  # fmt: skip
    """EventProp adjoint. dldt_out [B, T, N]: timing sensitivity of each own spike.

    Returns (grad_w_in [in, N], grad_w_rec [N, N] or None,
    in_dldt [B, T, in] = x * timing sensitivity, lam_i_trace [B, T, N]).
    """
    n_batch, n_steps, _ = x.shape
    n_out = w_in.shape[1]
    lam_v = np.zeros((n_batch, n_out), dtype=w_in.dtype)
    lam_i = np.zeros_like(lam_v)
    lam_i_next = np.zeros_like(lam_v)
    grad_w_in = np.zeros_like(w_in)
    grad_w_rec = None if w_rec is None else np.zeros_like(w_rec)
    in_dldt = np.zeros_like(x)
    trace = np.zeros((n_batch, n_steps, n_out), dtype=w_in.dtype)
    for n in range(n_steps - 1, -1, -1):
        u = _timing_kernel(lam_i_next, lam_i, dt)
        grad_w_in += x[:, n].T @ lam_i
        in_dldt[:, n] = x[:, n] * (u @ w_in.T)
        dldt = dldt_out[:, n].copy()
        if w_rec is not None:
            grad_w_rec += spikes[:, n].T @ lam_i
            dldt += u @ w_rec.T
        fired = spikes[:, n] > 0
        i_k = isyn[:, n] / alpha_syn  # the current at the start of the step
        denom = np.maximum(i_k - threshold, min_vdot)
        lam_v = np.where(fired, (lam_v * i_k - tau_mem * dldt) / denom, lam_v)
        trace[:, n] = lam_i
        lam_i_next = lam_i
        lam_i = alpha_syn * lam_i + syn_gain * lam_v
        lam_v = alpha_mem * lam_v
    return grad_w_in, grad_w_rec, in_dldt, trace


def li_backward(x, w_in, grad_v, alpha_mem, alpha_syn, syn_gain, dt):
    """Adjoint of :func:`li_forward`; returns (grad_w_in, in_dldt [B,T,in], lam_i_trace)."""
    n_batch, n_steps, _ = x.shape
    n_out = w_in.shape[1]
    lam_v = np.zeros((n_batch, n_out), dtype=w_in.dtype)
    lam_i = np.zeros_like(lam_v)
    grad_w_in = np.zeros_like(w_in)
    in_dldt = np.zeros_like(x)
    trace = np.zeros((n_batch, n_steps, n_out), dtype=w_in.dtype)
    lam_i_next = np.zeros_like(lam_v)
    for n in range(n_steps - 1, -1, -1):
        u = _timing_kernel(lam_i_next, lam_i, dt)
        grad_w_in += x[:, n].T @ lam_i
        in_dldt[:, n] = x[:, n] * (u @ w_in.T)
        trace[:, n] = lam_i
        lam_v = lam_v + grad_v[:, n]
        lam_i_next = lam_i
        lam_i = alpha_syn * lam_i + syn_gain * lam_v
        lam_v = alpha_mem * lam_v
    return grad_w_in, in_dldt, trace
