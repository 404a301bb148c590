"""e-prop (Bellec et al. 2020, Nat. Commun. 11:3625), dense and obviously correct (torch).

One spiking hidden layer (any neuron model with the ``"eprop"`` feature; optional
recurrent weights) feeds a leaky-integrator (LI) readout. Everything runs forward in
time; per synapse (r -> j), with the presynaptic vector ``pre[n] = (x[n], z[n])``
(inputs, then the layer's own spikes when recurrent):

* eligibility vector eps_rj = d(V, I, A)_j / dW_rj holding the other neurons' spikes
  fixed: the neuron model's ``eligibility_step`` (the state's step map acting on it,
  with the pseudo-derivative psi_j[n] and the reset), then ``eps_I += pre_r[n]`` exactly
  as the input enters the state;
* eligibility trace e_rj[n] = ds_j[n]/dW_rj (returned by ``eligibility_step``);
* filtered trace ebar_rj: e passed through the readout's own linear dynamics (the LI
  readout's exact (V, I) step, so ebar[n] = sum_{m<n} kappa[n-m] e[m] with kappa the
  readout's response to one hidden spike);
* learning signal L_j[n] = sum_k B_jk dE/dy_k[n], with the per-step cross-entropy
  E = (1 / (B T)) sum_{b,n} CE(softmax(y_b[n]), label_b) on the readout voltages y and
  B = W_out (symmetric feedback) or a fixed random matrix;
* dE/dW_rj = sum_n L_j[n] ebar_rj[n], plus the spike-count regulariser
  strength/2 * mean_{b,j} (count_bj - target)^2 (as
  :func:`spikeforge.nn.bptt.dense_spike_count_penalty`), whose e-prop gradient is
  strength (count_bj - target) / (B N) * sum_n e_rj[n].

Per-step (online) updates: with ``update_every = K`` the gradients of steps
[0, K), [K, 2K), ... are handed to ``apply`` after each window but the last, and the
weights it returns (and, with symmetric feedback, the new W_out as B) drive the rest of
the samples; the state and traces carry on unchanged. The regulariser's term joins the
last window.

The readout weights get their exact gradient sum_n dE/dy[n] zbar[n] (zbar: hidden
spikes through the readout dynamics). With symmetric feedback this equals BPTT through
the same network with the recurrent spikes' effect on the next step's state stopped
(the identity of the paper; ``tests/test_eprop.py`` checks it).

Shapes: inputs ``x [B, T, in]``, weights ``[pre, post]``, factor tables ``[K, N]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from spikeforge.neurons import lif
from spikeforge.neurons.base import NeuronModel
from spikeforge.nn.bptt import DEFAULT_SLOPE, DEFAULT_SURROGATE, surrogate_derivative


@dataclass
class EpropReferenceResult:
    """Gradients ``grad_w_in [in, N]``, ``grad_w_rec [N, N]`` (None without recurrence),
    ``grad_w_out [N, C]``; the per-step cross-entropy ``loss`` (a 0-d tensor, mean over
    samples and steps), hidden ``spikes [B, T, N]`` and readout voltages ``v_out [B, T, C]``."""

    grad_w_in: torch.Tensor
    grad_w_rec: torch.Tensor | None
    grad_w_out: torch.Tensor
    loss: torch.Tensor
    spikes: torch.Tensor
    v_out: torch.Tensor


def readout_column(readout_table: torch.Tensor) -> tuple:
    """The LI readout's factors as scalars (the readout's time constants are shared)."""
    if not bool((readout_table == readout_table[:, :1]).all()):
        raise ValueError("e-prop filters the traces with one readout time constant; "
                         "the readout's neurons must share tau_mem and tau_syn")
    return tuple(float(value) for value in readout_table[:, 0])


def trace_step(model: NeuronModel, table, traces: tuple, psi, s, pre) -> tuple:
    """One step of the eligibility vectors ``traces = (ev, ei, ea)`` [B, P, N] for the
    pseudo-derivative ``psi`` and spikes ``s`` [B, N] of step n, then the presynaptic
    arrival ``pre`` [B, P] of step n. Returns (ev, ei, ea, e) with e [B, P, N] the
    eligibility trace of step n."""
    ev, ei, ea, e = model.eligibility_step(*traces, psi[:, None, :], s[:, None, :], table)
    return ev, ei + pre[:, :, None], ea, e


def filter_step(column: tuple, filtered: tuple, e) -> tuple:
    """One step of the readout filter ``filtered = (fv, fi)``: decay by the readout's
    step map, read fv (the filtered value at this step), then let ``e`` arrive.
    Returns (fv, fi + e)."""
    fv, fi, _ = lif.integrate(filtered[0], filtered[1], 0.0, column)
    return fv, fi + e


def eprop_reference(model: NeuronModel, table: torch.Tensor, readout_table: torch.Tensor,
                    x: torch.Tensor, labels: torch.Tensor, w_in: torch.Tensor,
                    w_rec: torch.Tensor | None, w_out: torch.Tensor,
                    feedback: torch.Tensor | None = None,
                    surrogate: str = DEFAULT_SURROGATE, slope: float = DEFAULT_SLOPE,
                    reg_strength: float = 0.0, reg_target: float = 0.0,
                    update_every: int | None = None,
                    apply: Callable[[EpropReferenceResult], tuple] | None = None
                    ) -> EpropReferenceResult:
    """e-prop gradients of one batch (see the module docstring).

    Args:
        model, table: the hidden neuron model and its factor table ``[K, N]``.
        readout_table: the LI readout's factor table ``[5, C]`` (shared time constants).
        x: input values ``[B, T, in]``; labels: int64 ``[B]``.
        w_in ``[in, N]``, w_rec ``[N, N]`` or None, w_out ``[N, C]``: weights (pre, post).
        feedback: ``[N, C]`` learning-signal weights; None: symmetric (``w_out``).
        surrogate, slope: surrogate derivative of the spike (:mod:`spikeforge.nn.bptt`).
        reg_strength, reg_target: spike-count regulariser (target in spikes per sample).
        update_every, apply: per-step updates (see the module docstring): ``apply`` gets
            each window's result (its gradients; loss, spikes, v_out so far) and returns
            ``(w_in, w_rec, w_out)``. The result holds the last window's gradients.
    """
    n_batch, n_steps, n_in = x.shape
    n_out, n_classes = w_out.shape
    w = w_in if w_rec is None else torch.cat([w_in, w_rec])
    n_pre = w.shape[0]
    column = readout_column(readout_table)
    symmetric = feedback is None
    feedback = w_out if symmetric else feedback
    window = n_steps if update_every is None else max(1, int(update_every))
    onehot = torch.nn.functional.one_hot(labels, n_classes).to(x.dtype)
    scale = 1.0 / (n_batch * n_steps)

    def zeros(*shape):
        return x.new_zeros(shape)

    v, i_syn, aux = zeros(n_batch, n_out), zeros(n_batch, n_out), zeros(n_batch, n_out)
    rv, ri = zeros(n_batch, n_classes), zeros(n_batch, n_classes)
    traces = (zeros(n_batch, n_pre, n_out),) * 3
    filtered = (zeros(n_batch, n_pre, n_out),) * 2
    spikes_filtered = (zeros(n_batch, n_out),) * 2
    e_sum = zeros(n_batch, n_pre, n_out)
    grad_w, grad_out = zeros(n_pre, n_out), zeros(n_out, n_classes)
    loss = x.new_zeros(())
    spikes, v_out = [], []
    for n in range(n_steps):
        v, i_syn, aux = model.integrate(v, i_syn, aux, table)
        margin = model.margin(v, i_syn, aux, table)
        s = (margin >= 0).to(x.dtype)
        psi = model.pseudo_derivative(v, i_syn, aux,
                                      surrogate_derivative(margin, surrogate, slope), table)
        v, i_syn, aux = model.reset(v, i_syn, aux, s, s, table)
        # readout at step n, its error and the learning signal
        rv, ri, _ = lif.integrate(rv, ri, 0.0, readout_table)
        log_p = torch.log_softmax(rv, dim=1)
        loss = loss - scale * (log_p * onehot).sum()
        error = scale * (log_p.exp() - onehot)                     # dE/dy [B, C]
        signal = error @ feedback.T                                # L [B, N]
        ri = ri + s @ w_out
        # the readout's exact gradient, then the hidden synapses' e-prop gradient
        zv, zi = filter_step(column, spikes_filtered, s)
        spikes_filtered = (zv, zi)
        grad_out += zv.T @ error
        pre = x[:, n] if w_rec is None else torch.cat([x[:, n], s], dim=1)
        *traces, e = trace_step(model, table, traces, psi, s, pre)
        traces = tuple(traces)
        fv, fi = filter_step(column, filtered, e)
        filtered = (fv, fi)
        grad_w += (signal[:, None, :] * fv).sum(0)
        e_sum = e_sum + e
        i_syn = i_syn + pre @ w
        spikes.append(s)
        v_out.append(rv)
        if (n + 1) % window == 0 and n + 1 < n_steps:
            partial = EpropReferenceResult(
                grad_w_in=grad_w[:n_in], grad_w_rec=None if w_rec is None else grad_w[n_in:],
                grad_w_out=grad_out, loss=loss, spikes=torch.stack(spikes, dim=1),
                v_out=torch.stack(v_out, dim=1))  # fmt: skip
            w_in, w_rec, w_out = apply(partial)
            w = w_in if w_rec is None else torch.cat([w_in, w_rec])
            feedback = w_out if symmetric else feedback
            grad_w, grad_out = zeros(n_pre, n_out), zeros(n_out, n_classes)
    spikes_t = torch.stack(spikes, dim=1)
    if reg_strength > 0:
        excess = spikes_t.sum(dim=1) - reg_target                  # [B, N]
        coef = reg_strength * excess / (n_batch * n_out)
        grad_w += (coef[:, None, :] * e_sum).sum(0)
    return EpropReferenceResult(
        grad_w_in=grad_w[:n_in], grad_w_rec=None if w_rec is None else grad_w[n_in:],
        grad_w_out=grad_out, loss=loss, spikes=spikes_t, v_out=torch.stack(v_out, dim=1),
    )  # fmt: skip
