"""Compiled e-prop driver: one spiking hidden layer and its LI readout, forward only.

:func:`train_batch` is a template like :func:`spikeforge.engine.event_loop.forward`:
:func:`spikeforge.engine.specialise.specialise` binds the hidden neuron model's maths
(``model_integrate``, ``model_margin``, ``model_reset``, ``model_pseudo_derivative``,
``model_eligibility_step``, ``factor_column``) and this module's
:data:`TEMPLATE_HELPERS`. The readout is the LI neuron of :mod:`spikeforge.neurons.lif`.

Per sample and step n (the order of the other drivers), for hidden neurons j, readout
neurons k and presynaptic units r (inputs, then the layer's own spikes if recurrent):
  1. hidden: integrate; margin m_j; spike s_j = [m_j >= 0]; pseudo-derivative
     psi_j = model_pseudo_derivative(.., surrogate'(m_j)); reset
  2. readout: integrate, y_k[n] = V_k; error g_k = (softmax(y[n])_k - [k = label]) * scale
     (the per-step cross-entropy, scale = 1 / (B T)); readout input += s W_out
  3. learning signal L_j = sum_k B_jk g_k; readout gradient += zbar_j g_k (zbar: the
     hidden spikes through the readout's dynamics)
  4. every synapse (r, j): eligibility vector and trace e_rj by
     model_eligibility_step; filtered trace ebar_rj through the readout's dynamics;
     grad_rj += L_j ebar_rj; then the presynaptic arrival eps_I += pre_r[n]
  5. hidden input: I_j += sum_r pre_r[n] W_rj
At the end of a sample the spike-count regulariser adds
reg_coef (count_j - target) sum_n e_rj[n]. With per-batch updates the traces live per
chunk of samples (one chunk per thread), so memory is O(synapses x threads): flat in T
and in B. Per-step (online) updates run the batch in windows of time steps with every
sample's state kept between windows (O(synapses x B), still flat in T); the caller
updates the weights between windows.
See :mod:`spikeforge.train.eprop_reference` for the maths and the oracle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from spikeforge.neurons import lif

SURROGATE_CODES = {"fast_sigmoid": 0, "arctan": 1}
"""Surrogate derivative shapes (as in :mod:`spikeforge.nn.bptt`), by kernel code."""
SUMMARY_CODES = {"sum": 0, "sum_exp": 1, "max": 2}
"""Readout summaries (as in :func:`spikeforge.train.losses.readout_summary`)."""

readout_integrate = njit(inline="always", fastmath=True)(lif.integrate)


@njit(inline="always", fastmath=True)
def surrogate_value(x, kind, slope):
    """Surrogate dH/dx at x (fast sigmoid: 1 / (1 + slope |x|)^2; arctan:
    1 / (1 + (pi/2 slope x)^2))."""
    if kind == 0:
        d = 1.0 + slope * abs(x)
        return 1.0 / (d * d)
    y = 0.5 * math.pi * slope * x
    return 1.0 / (1.0 + y * y)


@njit(inline="always")
def readout_column(rtable, k):
    """Readout neuron k's LI factors as a tuple (the rows of ``lif.FACTOR_NAMES``)."""
    return (rtable[0, k], rtable[1, k], rtable[2, k], rtable[3, k], rtable[4, k])


@njit(inline="always", fastmath=True)
def readout_step(rv, ri, rtable, label, scale, error):
    """Step 2 (before the input arrives): integrate the readout, write the per-step
    cross-entropy's dE/dy into ``error``; returns the step's loss (times ``scale``)."""
    n_classes = rv.shape[0]
    for k in range(n_classes):
        rv[k], ri[k], _ = readout_integrate(rv[k], ri[k], 0.0, readout_column(rtable, k))
    top = rv[0]
    for k in range(1, n_classes):
        top = max(top, rv[k])
    total = 0.0
    for k in range(n_classes):
        error[k] = math.exp(rv[k] - top)
        total += error[k]
    for k in range(n_classes):
        error[k] = scale * (error[k] / total - (1.0 if k == label else 0.0))
    return -scale * (rv[label] - top - math.log(total))


@njit(inline="always", fastmath=True)
def summary_step(summary, rv, n, n_steps, kind, first):
    """Accumulate the readout summary of one sample at step n (mean, exp-weighted
    mean or max of the voltages)."""
    for k in range(rv.shape[0]):
        if kind == 0:
            summary[k] += rv[k] / n_steps
        elif kind == 1:
            summary[k] += math.exp(-n / n_steps) * rv[k] / n_steps
        else:
            summary[k] = rv[k] if first else max(summary[k], rv[k])


TEMPLATE_HELPERS = ("hidden_step", "synapse_step")
"""Template helpers of this driver, bound per neuron model by ``specialise``."""


def hidden_step(v, i_syn, aux, table, s, psi, kind, slope):
    """(Template helper.) Step 1 for every hidden neuron; returns the number of spikes."""
    fired = 0
    for j in range(v.shape[0]):
        pj = factor_column(table, j)  # noqa: F821
        v[j], i_syn[j], aux[j] = model_integrate(v[j], i_syn[j], aux[j], pj)  # noqa: F821
        m = model_margin(v[j], i_syn[j], aux[j], pj)  # noqa: F821
        psi[j] = model_pseudo_derivative(  # noqa: F821
            v[j], i_syn[j], aux[j], surrogate_value(m, kind, slope), pj)
        s[j] = 1.0 if m >= 0.0 else 0.0
        if m >= 0.0:
            fired += 1
            v[j], i_syn[j], aux[j] = model_reset(v[j], i_syn[j], aux[j], 1.0, 1.0, pj)  # noqa: F821
    return fired


def synapse_step(ev, ei, ea, fv, fi, e_sum, grad, pre, psi, s, signal, table, filt):
    """(Template helper.) Step 4 for every synapse (r, j): traces [P, N], ``filt`` the
    readout's factor column that filters the traces."""
    n_pre, n_out = ev.shape
    for r in range(n_pre):
        arrival = pre[r]
        for j in range(n_out):
            ev[r, j], ei_new, ea[r, j], e = model_eligibility_step(  # noqa: F821
                ev[r, j], ei[r, j], ea[r, j], psi[j], s[j], factor_column(table, j))  # noqa: F821
            fv[r, j], fi_new, _ = readout_integrate(fv[r, j], fi[r, j], 0.0, filt)
            grad[r, j] += signal[j] * fv[r, j]
            fi[r, j] = fi_new + e
            e_sum[r, j] += e
            ei[r, j] = ei_new + arrival


def train_batch(
    in_ptr, in_step, in_unit, in_value, n_in, w, w_out, feedback, table, rtable, labels,
    n_steps, n_start, n_stop, kind, slope, reg_coef, reg_target, summary_kind, grad_parts,
    grad_out_parts, loss_out, summary_out, count_out, hidden_state, readout_state,
    trace_state, cursor,
):  # fmt: skip
    """e-prop gradients of steps ``n_start`` .. ``n_stop - 1`` of one batch (template; see
    the module docstring).

    Inputs as events (CSR ``in_ptr`` [B + 1], ``in_step``, ``in_unit``, ``in_value``);
    ``w`` [P, N]: the ``n_in`` input weights' rows, then the recurrent weights' (P = in
    or in + N);
    ``w_out``, ``feedback`` [N, C]; ``table`` [K, N] the hidden model's factor table,
    ``rtable`` [5, C] the LI readout's (shared time constants: column 0 filters the
    traces); ``labels`` int64 [B]; ``n_steps`` the samples' length T (steps);
    ``kind`` a :data:`SURROGATE_CODES` value;
    ``reg_coef`` = strength / (B N), ``reg_target`` in spikes per sample.
    State carried between windows, per slot: ``hidden_state`` [S, 5, N] (V, I, A and the
    spikes' readout filter), ``readout_state`` [S, 2, C], ``trace_state`` [S, 6, P, N]
    (eligibility vectors, filtered trace, trace sum) and per sample ``cursor`` [B] (the
    next input event). S = B gives every sample its own slot (the window may stop before
    T and a later call resumes it); S = chunks reuses one slot per chunk, which needs the
    whole sample in one window (``n_start = 0``, ``n_stop = T``). A window that starts
    at step 0 resets the sample's state.
    Outputs: the window's per-chunk gradients ``grad_parts`` [chunks, P, N],
    ``grad_out_parts`` [chunks, N, C] (the regulariser's term is added in the window
    that ends at T); per sample, accumulated over windows, ``loss_out`` [B] (its share
    of the mean per-step cross-entropy), ``summary_out`` [B, C] (:data:`SUMMARY_CODES`),
    ``count_out`` [B, N].
    """
    n_batch = in_ptr.shape[0] - 1
    n_pre, n_out = w.shape
    n_classes = w_out.shape[1]
    n_chunks = grad_parts.shape[0]
    per_sample = hidden_state.shape[0] == n_batch
    scale = 1.0 / (n_batch * n_steps)
    filt = readout_column(rtable, 0)
    for c in prange(n_chunks):
        grad, grad_out = grad_parts[c], grad_out_parts[c]
        s, psi, signal = (np.zeros(n_out, dtype=w.dtype), np.zeros(n_out, dtype=w.dtype),
                          np.zeros(n_out, dtype=w.dtype))
        error = np.zeros(n_classes, dtype=w.dtype)
        pre = np.zeros(n_pre, dtype=w.dtype)
        for b in range(c, n_batch, n_chunks):
            slot = np.int64(b) if per_sample else np.int64(c)
            hidden, readout, traces = hidden_state[slot], readout_state[slot], trace_state[slot]
            v, i_syn, aux, zv, zi = hidden[0], hidden[1], hidden[2], hidden[3], hidden[4]
            rv, ri = readout[0], readout[1]
            ev, ei, ea, fv, fi, e_sum = (traces[0], traces[1], traces[2], traces[3],
                                         traces[4], traces[5])
            if n_start == 0:
                hidden[:] = 0.0
                readout[:] = 0.0
                traces[:] = 0.0
                cursor[b] = in_ptr[b]
            p, p_end, loss = cursor[b], in_ptr[b + 1], 0.0
            for n in range(n_start, n_stop):
                hidden_step(v, i_syn, aux, table, s, psi, kind, slope)
                loss += readout_step(rv, ri, rtable, labels[b], scale, error)
                summary_step(summary_out[b], rv, n, n_steps, summary_kind, n == 0)
                for j in range(n_out):
                    acc = 0.0
                    for k in range(n_classes):
                        acc += feedback[j, k] * error[k]
                    signal[j] = acc
                    zv[j], zi[j], _ = readout_integrate(zv[j], zi[j], 0.0, filt)
                    for k in range(n_classes):
                        grad_out[j, k] += zv[j] * error[k]
                    if s[j] > 0.0:
                        zi[j] += 1.0
                        count_out[b, j] += 1.0
                        for k in range(n_classes):
                            ri[k] += w_out[j, k]
                pre[:] = 0.0
                while p < p_end and in_step[p] == n:
                    pre[in_unit[p]] += in_value[p]
                    p += 1
                for j in range(n_pre - n_in):
                    pre[n_in + j] = s[j]
                synapse_step(ev, ei, ea, fv, fi, e_sum, grad, pre, psi, s, signal, table,
                             filt)
                for r in range(n_pre):
                    if pre[r] != 0.0:
                        for j in range(n_out):
                            i_syn[j] += pre[r] * w[r, j]
            cursor[b] = p
            loss_out[b] += loss
            if n_stop == n_steps:
                for j in range(n_out):
                    coef = reg_coef * (count_out[b, j] - reg_target)
                    if coef != 0.0:
                        for r in range(n_pre):
                            grad[r, j] += coef * e_sum[r, j]
