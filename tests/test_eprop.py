"""e-prop: traces in closed form, the identity with truncated BPTT, the compiled kernel
against the reference, and training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikeforge.engine import NeuronArrays
from spikeforge.neurons import ALIFParams, LIFParams, lif, model_of
from spikeforge.nn.bptt import surrogate_spike
from spikeforge.train.eprop_reference import eprop_reference, trace_step

DT = 1.0


def tables(params, n_out: int, n_classes: int, readout=LIFParams(10.0, 3.0, spiking=False)):
    hidden = NeuronArrays.from_params(params, n_out, DT, np.float64)
    out = NeuronArrays.from_params(readout, n_classes, DT, np.float64)
    return hidden.model, torch.from_numpy(hidden.table), torch.from_numpy(out.table)


def psp(k: int, tau_mem: float, tau_syn: float) -> float:
    """V k steps after a unit current jump (exact current-based LIF kernel)."""
    t = k * DT
    return tau_syn / (tau_syn - tau_mem) * (math.exp(-t / tau_syn) - math.exp(-t / tau_mem))


def run_traces(params, pre, psi, post):
    """Eligibility vectors of one synapse for hand-made pre spikes / psi / post spikes
    [T]: returns per step (ev, ei, ea, e) after the step."""
    model, table, _ = tables(params, 1, 1)
    traces = (torch.zeros(1, 1, 1, dtype=torch.float64),) * 3
    rows = []
    for n in range(len(pre)):
        *traces, e = trace_step(model, table, tuple(traces),
                                torch.tensor([[psi[n]]], dtype=torch.float64),
                                torch.tensor([[post[n]]], dtype=torch.float64),
                                torch.tensor([[pre[n]]], dtype=torch.float64))
        rows.append([float(t.reshape(())) for t in (*traces, e)])
    return np.array(rows)


def test_lif_trace_is_the_psp_kernel_and_restarts_after_a_post_spike():
    params = LIFParams(tau_mem=20.0, tau_syn=5.0)
    n0, n1, steps = 3, 15, 40
    pre = np.zeros(steps)
    pre[n0] = 1.0
    post = np.zeros(steps)
    post[n1] = 1.0
    psi = np.linspace(0.1, 0.9, steps)
    rows = run_traces(params, pre, psi, post)
    alpha_syn = math.exp(-DT / params.tau_syn)
    for n in range(steps):
        if n <= n0:
            expected_ev_pre_reset = 0.0
        elif n <= n1:
            expected_ev_pre_reset = psp(n - n0, 20.0, 5.0)
        else:  # reset at n1: V-eligibility restarts from the current left at n1
            expected_ev_pre_reset = alpha_syn ** (n1 - n0) * psp(n - n1, 20.0, 5.0)
        assert rows[n, 3] == pytest.approx(psi[n] * expected_ev_pre_reset, abs=1e-14)
        expected_ei = alpha_syn ** (n - n0) if n >= n0 else 0.0
        assert rows[n, 1] == pytest.approx(expected_ei, abs=1e-14)
    assert rows[n1, 0] == 0.0 and rows[n1 - 1, 0] > 0.1


def test_alif_adaptation_trace_closed_form():
    params = ALIFParams(tau_mem=20.0, tau_syn=5.0, tau_adapt=50.0, beta=0.7)
    n0, steps, psi0 = 2, 60, 0.3
    pre = np.zeros(steps)
    pre[n0] = 1.0
    rows = run_traces(params, pre, np.full(steps, psi0), np.zeros(steps))
    rho = math.exp(-DT / params.tau_adapt)
    for n in range(steps):
        ev_tilde = [psp(m - n0, 20.0, 5.0) if m > n0 else 0.0 for m in range(n + 1)]
        # eps_a[n] = sum_m (rho (1 - psi beta))^(n - m) psi ev~[m]
        eps_a = sum((rho * (1 - psi0 * 0.7)) ** (n - m) * psi0 * ev_tilde[m]
                    for m in range(n + 1))
        assert rows[n, 2] == pytest.approx(eps_a, abs=1e-13)
        eps_a_before = rows[n - 1, 2] if n else 0.0
        assert rows[n, 3] == pytest.approx(psi0 * (ev_tilde[n] - 0.7 * rho * eps_a_before),
                                           abs=1e-13)
    assert rows[-1, 2] > 0.02


def problem(seed: int, n_in=5, n_out=4, n_classes=3, n_batch=3, n_steps=35):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_batch, n_steps, n_in, generator=gen, dtype=torch.float64) < 0.25)
    x = x.to(torch.float64) * (0.5 + torch.rand(n_batch, n_steps, n_in, generator=gen,
                                                  dtype=torch.float64))
    w_in = 1.0 + 2.0 * torch.randn(n_in, n_out, generator=gen, dtype=torch.float64)
    w_rec = 0.8 * torch.randn(n_out, n_out, generator=gen, dtype=torch.float64)
    w_out = torch.randn(n_out, n_classes, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, n_classes, (n_batch,), generator=gen)
    return x, labels, w_in, w_rec, w_out


def truncated_bptt(model, table, readout_table, x, labels, w_in, w_rec, w_out, surrogate,
                   slope, reg_strength, reg_target):
    """Autograd through the network with the recurrent spikes' effect on the next step's
    state detached, per-step cross-entropy on the LI readout, spike-count regulariser."""
    w_in, w_out = w_in.clone().requires_grad_(), w_out.clone().requires_grad_()
    w_rec = None if w_rec is None else w_rec.clone().requires_grad_()
    n_batch, n_steps, _ = x.shape
    n_out, n_classes = w_out.shape
    v = i_syn = aux = x.new_zeros(n_batch, n_out)
    rv = ri = x.new_zeros(n_batch, n_classes)
    loss, spikes = x.new_zeros(()), []
    threshold = table[model.row("threshold")]
    for n in range(n_steps):
        v, i_syn, aux = model.integrate(v, i_syn, aux, table)
        raw = surrogate_spike(model.margin(v, i_syn, aux, table), surrogate, slope)
        s = raw.detach() + (raw - raw.detach()) / threshold      # psi = h' / threshold
        v, i_syn, aux = model.reset(v, i_syn, aux, s, s.detach(), table)
        rv, ri, _ = lif.integrate(rv, ri, 0.0, readout_table)
        loss = loss + torch.nn.functional.cross_entropy(rv, labels) / n_steps
        ri = ri + s @ w_out
        i_syn = i_syn + x[:, n] @ w_in
        if w_rec is not None:
            i_syn = i_syn + s.detach() @ w_rec
        spikes.append(s)
    counts = torch.stack(spikes, dim=1).sum(dim=1)
    total = loss + 0.5 * reg_strength * ((counts - reg_target) ** 2).mean()
    total.backward()
    return loss.detach(), w_in.grad, None if w_rec is None else w_rec.grad, w_out.grad, counts


CASES = [
    ("lif", LIFParams(tau_mem=20.0, tau_syn=5.0, threshold=1.0), True, "fast_sigmoid"),
    ("lif-ff", LIFParams(tau_mem=15.0, tau_syn=4.0, threshold=0.7), False, "arctan"),
    ("alif", ALIFParams(tau_mem=20.0, tau_syn=5.0, threshold=0.8, tau_adapt=60.0, beta=0.5),
     True, "fast_sigmoid"),
]


@pytest.mark.parametrize(("name", "params", "recurrent", "surrogate"), CASES,
                         ids=[case[0] for case in CASES])
def test_eprop_equals_bptt_without_recurrent_through_state_terms(name, params, recurrent,
                                                                  surrogate):
    model, table, readout_table = tables(params, 4, 3)
    x, labels, w_in, w_rec, w_out = problem(7)
    w_rec = w_rec if recurrent else None
    reg = dict(reg_strength=0.05, reg_target=2.0)
    ref = eprop_reference(model, table, readout_table, x, labels, w_in, w_rec, w_out,
                          surrogate=surrogate, slope=5.0, **reg)
    loss, g_in, g_rec, g_out, counts = truncated_bptt(model, table, readout_table, x, labels,
                                                      w_in, w_rec, w_out, surrogate, 5.0,
                                                      reg["reg_strength"], reg["reg_target"])
    total = float(counts.detach().sum())
    assert 10 < total < 0.8 * counts.numel() * 35
    assert float(ref.loss) == pytest.approx(float(loss), rel=1e-12)
    torch.testing.assert_close(ref.grad_w_in, g_in, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ref.grad_w_out, g_out, rtol=1e-9, atol=1e-12)
    if recurrent:
        torch.testing.assert_close(ref.grad_w_rec, g_rec, rtol=1e-9, atol=1e-12)
    assert float(ref.grad_w_in.abs().max()) > 1e-4


def test_eprop_differs_from_full_bptt_only_by_the_dropped_terms():
    """With recurrence the e-prop gradient is not the full BPTT gradient (the identity is
    not vacuous), and random feedback changes the hidden gradient only."""
    model, table, readout_table = tables(CASES[0][1], 4, 3)
    x, labels, w_in, w_rec, w_out = problem(3)
    ref = eprop_reference(model, table, readout_table, x, labels, w_in, w_rec, w_out)
    w_in_full = w_in.clone().requires_grad_()
    w_rec_full = w_rec.clone().requires_grad_()
    v = i_syn = aux = x.new_zeros(3, 4)
    rv = ri = x.new_zeros(3, 3)
    loss = x.new_zeros(())
    for n in range(x.shape[1]):
        v, i_syn, aux = model.integrate(v, i_syn, aux, table)
        s = surrogate_spike(model.margin(v, i_syn, aux, table))
        v, i_syn, aux = model.reset(v, i_syn, aux, s, s.detach(), table)
        rv, ri, _ = lif.integrate(rv, ri, 0.0, readout_table)
        loss = loss + torch.nn.functional.cross_entropy(rv, labels) / x.shape[1]
        ri = ri + s @ w_out
        i_syn = i_syn + x[:, n] @ w_in_full + s @ w_rec_full
    loss.backward()
    assert not torch.allclose(ref.grad_w_in, w_in_full.grad, rtol=1e-3)
    random_fb = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    other = eprop_reference(model, table, readout_table, x, labels, w_in, w_rec, w_out,
                            feedback=random_fb)
    torch.testing.assert_close(other.grad_w_out, ref.grad_w_out)
    assert not torch.allclose(other.grad_w_in, ref.grad_w_in)
    assert model is model_of(CASES[0][1])


@pytest.mark.parametrize(("name", "params", "recurrent", "surrogate"), CASES,
                         ids=[case[0] for case in CASES])
def test_compiled_kernel_matches_the_reference(name, params, recurrent, surrogate):
    from spikeforge.engine.eprop_api import eprop_gradients
    from spikeforge.events import Events

    model, table, readout_table = tables(params, 4, 3)
    x, labels, w_in, w_rec, w_out = problem(11, n_batch=5)
    w_rec = w_rec if recurrent else None
    feedback = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    options = dict(surrogate=surrogate, slope=5.0, reg_strength=0.05, reg_target=2.0)
    ref = eprop_reference(model, table, readout_table, x, labels, w_in, w_rec, w_out,
                          feedback=feedback, **options)
    hidden = NeuronArrays.from_params(params, 4, DT, np.float64)
    readout = NeuronArrays.from_params(LIFParams(10.0, 3.0, spiking=False), 3, DT, np.float64)
    got = eprop_gradients(hidden, readout, Events.from_dense(x.numpy()), w_in.numpy(),
                          None if w_rec is None else w_rec.numpy(), w_out.numpy(),
                          labels.numpy(), feedback=feedback.numpy(), n_chunks=2, **options)
    np.testing.assert_allclose(got.grad_w_in, ref.grad_w_in.numpy(), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(got.grad_w_out, ref.grad_w_out.numpy(), rtol=1e-9, atol=1e-13)
    if recurrent:
        np.testing.assert_allclose(got.grad_w_rec, ref.grad_w_rec.numpy(), rtol=1e-9,
                                   atol=1e-13)
    assert got.loss.sum() == pytest.approx(float(ref.loss), rel=1e-12)
    np.testing.assert_array_equal(got.counts, ref.spikes.sum(dim=1).numpy())
    np.testing.assert_allclose(got.summary, ref.v_out.mean(dim=1).numpy(), atol=1e-13)
    assert float(ref.spikes.sum()) > 10


def tiny_network(recurrent: bool = True, hidden=(12,), **layer):
    from spikeforge.model import LayerSpec, NetworkSpec
    from spikeforge.nn import build_network

    torch.manual_seed(0)
    layers = [LayerSpec(size=size, neuron=LIFParams(), recurrent=recurrent, weight_mean=0.5,
                        **layer) for size in hidden]
    readout = LayerSpec(size=2, neuron=LIFParams(spiking=False), weight_std=3.0)
    return build_network(NetworkSpec(n_inputs=6, layers=(*layers, readout), dt=DT))


def tiny_batch(n_batch: int = 16, n_steps: int = 30):
    """Class 0 drives channels 0-2 early, class 1 channels 3-5 late."""
    from spikeforge.events import Events

    labels = torch.arange(n_batch) % 2
    x = np.zeros((n_batch, n_steps, 6), dtype=np.float32)
    for b, label in enumerate(labels.tolist()):
        channels = slice(0, 3) if label == 0 else slice(3, 6)
        start = 2 if label == 0 else 10
        x[b, start:start + 8:2, channels] = 1.0
    return Events.from_dense(x), labels


def test_a_few_eprop_steps_reduce_the_loss():
    from spikeforge.train.eprop import EpropLearner, EpropSettings

    network = tiny_network()
    learner = EpropLearner(network, EpropSettings(reg_strength=1e-3, reg_target_hz=20.0))
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-2)
    events, labels = tiny_batch()
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss, predictions = learner.step(events, labels)
        optimizer.step()
        losses.append(float(loss))
    assert network.layers[0].recurrent_weight.grad.abs().sum() > 0
    assert losses[-1] < 0.7 * losses[0]
    assert float((predictions == labels).float().mean()) == 1.0


def test_random_feedback_is_fixed_and_seeded():
    from spikeforge.train.eprop import EpropLearner, EpropSettings

    a = EpropLearner(tiny_network(), EpropSettings(feedback="random", seed=3))
    b = EpropLearner(tiny_network(), EpropSettings(feedback="random", seed=3))
    np.testing.assert_array_equal(a.feedback, b.feedback)
    assert a.feedback.shape == (12, 2)
    assert not np.allclose(a.feedback, a.readout.weight.detach().numpy().T)


@pytest.mark.parametrize(("overrides", "named"), [
    ({"model.delays": {"max_ms": 5.0}}, "layer 0 (DelayedLIF"),
    ({"model.hidden": [16, 16]}, "layer 1 (LIF"),
    ({"model.input_shape": [1, 8, 8],
      "model.conv": [{"channels": 4, "kernel": 3, "padding": 1, "pool": 2}]},
     "layer 0 (conv 4 maps 3x3, pool 2"),
])
def test_layers_eprop_cannot_train_are_refused_by_name(overrides, named):
    from spikeforge.errors import SpikeforgeError
    from spikeforge.experiments.config import load_config
    from spikeforge.experiments.loading import load_splits, run_trainer

    config = load_config(None, {"train.method": "eprop", **overrides})
    splits = load_splits(config)
    with pytest.raises(SpikeforgeError, match=r"^e-prop") as info:
        run_trainer(config, splits)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_first_spike_loss_with_eprop_is_a_config_error():
    from spikeforge.errors import SpikeforgeError
    from spikeforge.experiments.config import load_config

    with pytest.raises(SpikeforgeError, match="first_spike"):
        load_config(None, {"train.method": "eprop", "train.loss": "first_spike"})


@pytest.mark.slow
def test_eprop_reaches_90_percent_on_digits(tmp_path):
    from spikeforge.experiments.config import load_config
    from spikeforge.experiments.runner import train_run

    results = train_run(load_config(None, {"train.method": "eprop"}), tmp_path / "run")
    assert results["test_accuracy"] >= 0.90
