"""Dense NumPy reference for LIF / LI layers with per-synapse delays (forward + EventProp).

Slow but obviously correct; the compiled driver :mod:`delay_loop` implements the same
maths on sparse events and tests compare the two. The neuron's maths come from its model
(:mod:`spikeforge.neurons`), applied to [B, N] arrays.

Delays. Synapse i -> j has a delay d_ij >= 0 in ms, written in steps as
d_ij / dt = q_ij + f_ij with integer q_ij >= 0 and fraction 0 <= f_ij < 1. A presynaptic
event of amplitude v at step n injects w_ij v into the synaptic current I_j split
linearly between two steps: (1 - f) w v at step n + q and f w v at step n + q + 1
("interpolated" delays; "rounded" delays have f = 0). With d = 0 the layer is exactly the
undelayed layer of :mod:`dense_loop`. Arrivals at or after ``n_steps`` have no effect.

Per step n the forward does: the neuron model's integrate and threshold / reset (or
record V), then adds every current arriving at step n (inputs and own spikes with delay 0 arrive
in the step they are emitted, as in the undelayed layer).

EventProp with delays (Meszaros, Knight & Nowotny 2025). Let tr[m] = lam_I at t_m^+
(dL/dI just after the arrivals of step m; 0 for m >= n_steps). An injection of c at step
m changes the loss by c tr[m], so with the linear split

    dL/dw_ij    = sum over events k of i:  v_k ((1 - f) tr_j[m_k] + f tr_j[m_k + 1])
    dL/dd_ij    = sum over events k of i:  w_ij v_k (tr_j[m_k + 1] - tr_j[m_k]) / dt
    dL/dt_k     = sum_j w_ij v_k (tr_j[m_k + 1] - tr_j[m_k]) / dt     (m_k = n_k + q_ij)

Because (tr[m+1] - tr[m]) / dt = ((1 - a_s) lam_I - g lam_V) / dt at step m + 1, which
tends to lam_I / tau_syn - lam_V / tau_mem as dt -> 0, the delay gradient is the weight
times the post neuron's timing sensitivity at the *arrival* time, and an event's timing
sensitivity is the sum of its synapses' delay gradients (shifting the spike shifts all
of its arrivals). Own spikes feed back through delayed recurrent synapses the same way;
the spike's total dL/dt_k enters the usual EventProp jump of lam_V.
"""

from __future__ import annotations

import numpy as np

from spikeforge.engine.dense_loop import spike_jumps


def _arrivals(x, w, dq, df, n_total):
    """Currents [B, n_total, N] arriving from dense inputs x [B, T, in] through delayed
    synapses (weights w [in, N], integer steps dq, fractions df)."""
    n_batch, n_steps, n_in = x.shape
    out = np.zeros((n_batch, n_total, w.shape[1]), dtype=w.dtype)
    for i in range(n_in):
        for j in range(w.shape[1]):
            q, f, wij = int(dq[i, j]), df[i, j], w[i, j]
            out[:, q : q + n_steps, j] += (1.0 - f) * wij * x[:, :, i]
            out[:, q + 1 : q + 1 + n_steps, j] += f * wij * x[:, :, i]
    return out


def _scatter_step(arrive, s, n, w, dq, df):
    """Add own spikes s [B, N] of step n through delayed recurrent synapses into ``arrive``."""
    for k in range(w.shape[0]):
        for j in range(w.shape[1]):
            q, f, wkj = int(dq[k, j]), df[k, j], w[k, j]
            arrive[:, n + q, j] += (1.0 - f) * wkj * s[:, k]
            arrive[:, n + q + 1, j] += f * wkj * s[:, k]


def delayed_forward(x, w_in, dq_in, df_in, w_rec, dq_rec, df_rec, model, table, spiking):
    """x [B, T, in] -> (spikes [B, T, N], x1, x2 at each spike [B, T, N]) for a spiking
    layer, or (V [B, T, N] after each step's integration, None, None) for a readout;
    ``model``/``table``: the neuron model and its factor table [K, N]."""
    n_batch, n_steps, _ = x.shape
    n_out = w_in.shape[1]
    max_q = int(dq_in.max(initial=0))
    if w_rec is not None:
        max_q = max(max_q, int(dq_rec.max(initial=0)))
    arrive = _arrivals(x, w_in, dq_in, df_in, n_steps + max_q + 2)
    v = np.zeros((n_batch, n_out), dtype=w_in.dtype)
    i_syn = np.zeros_like(v)
    aux = np.zeros_like(v)
    record = np.zeros((n_batch, n_steps, n_out), dtype=w_in.dtype)
    x1s, x2s = np.zeros_like(record), np.zeros_like(record)
    for n in range(n_steps):
        v, i_syn, aux = model.integrate(v, i_syn, aux, table)
        if spiking:
            s = (model.margin(v, i_syn, aux, table) >= 0).astype(w_in.dtype)
            record[:, n] = s
            x1, x2 = model.spike_values(v, i_syn, aux, table)
            x1s[:, n], x2s[:, n] = x1 * s, x2 * s
            v, i_syn, aux = model.reset(v, i_syn, aux, s, s, table)
            if w_rec is not None:
                _scatter_step(arrive, s, n, w_rec, dq_rec, df_rec)
        else:
            record[:, n] = v
        i_syn = i_syn + arrive[:, n]
    return (record, x1s, x2s) if spiking else (record, None, None)


def _trace_at(trace, m):
    """tr[m] for an integer array m (0 where m >= T) -- trace [B, T, N] -> [B, ..., N]."""
    return trace[:, m] if m < trace.shape[1] else np.zeros_like(trace[:, 0])


def delayed_backward(x, w_in, dq_in, df_in, w_rec, dq_rec, df_rec, spikes, x1, x2, dldt_out,
                     grad_v, model, table, dt, spiking, min_vdot):  # fmt: skip
    """EventProp adjoint of :func:`delayed_forward` (see the module docstring).

    Spiking layers: ``spikes`` and per-spike values ``x1``, ``x2`` from the forward and
    ``dldt_out`` [B, T, N] the timing sensitivity of each own spike from consumers.
    Readouts: ``grad_v`` [B, T, N] = dL/dV.
    Returns a dict with grad_w_in, grad_d_in [in, N], grad_w_rec, grad_d_rec [N, N] (or
    None), in_dldt [B, T, in] (summed timing sensitivity of the inputs at each step) and
    trace [B, T, N] (lam_I after each step's arrivals).
    """
    n_batch, n_steps, n_in = x.shape
    n_out = w_in.shape[1]
    lam_v = np.zeros((n_batch, n_out), dtype=w_in.dtype)
    lam_i = np.zeros_like(lam_v)
    lam_a = np.zeros_like(lam_v)
    trace = np.zeros((n_batch, n_steps, n_out), dtype=w_in.dtype)
    has_rec = w_rec is not None
    grad_w_rec = np.zeros_like(w_rec) if has_rec else None
    grad_d_rec = np.zeros_like(w_rec) if has_rec else None
    for n in range(n_steps - 1, -1, -1):
        trace[:, n] = lam_i
        if spiking:
            dldt = dldt_out[:, n].copy()
            if has_rec:
                s = spikes[:, n]
                for k in range(n_out):
                    for j in range(n_out):
                        m, f = n + int(dq_rec[k, j]), df_rec[k, j]
                        a, b = _trace_at(trace, m)[:, j], _trace_at(trace, m + 1)[:, j]
                        grad_w_rec[k, j] += s[:, k] @ ((1.0 - f) * a + f * b)
                        sens = w_rec[k, j] * (b - a) / dt
                        grad_d_rec[k, j] += s[:, k] @ sens
                        dldt[:, k] += s[:, k] * sens
            lam_v, lam_i, lam_a = spike_jumps(model, table, spikes[:, n] > 0,
                                              (lam_v, lam_i, lam_a), x1[:, n], x2[:, n], dldt,
                                              min_vdot)
        else:
            lam_v = lam_v + grad_v[:, n]
        lam_v, lam_i, lam_a = model.adjoint_integrate(lam_v, lam_i, lam_a, table)
    grad_w_in = np.zeros_like(w_in)
    grad_d_in = np.zeros_like(w_in)
    in_dldt = np.zeros_like(x)
    padded = np.concatenate(
        [trace, np.zeros((n_batch, int(dq_in.max(initial=0)) + 2, n_out), trace.dtype)], axis=1
    )
    for i in range(n_in):
        for j in range(n_out):
            q, f = int(dq_in[i, j]), df_in[i, j]
            a = padded[:, q : q + n_steps, j]
            b = padded[:, q + 1 : q + 1 + n_steps, j]
            grad_w_in[i, j] = np.sum(x[:, :, i] * ((1.0 - f) * a + f * b))
            sens = x[:, :, i] * w_in[i, j] * (b - a) / dt
            grad_d_in[i, j] = np.sum(sens)
            in_dldt[:, :, i] += sens
    return dict(grad_w_in=grad_w_in, grad_d_in=grad_d_in, grad_w_rec=grad_w_rec,
                grad_d_rec=grad_d_rec, in_dldt=in_dldt, trace=trace)  # fmt: skip
