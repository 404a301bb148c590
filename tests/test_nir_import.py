"""NIR import of graphs laid out as other libraries write them: node types, parameter
mapping, sub-graphs, branches, and what is refused (graphs built in code)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from export_helpers import random_events
from spikeforge.errors import SpikeforgeError
from spikeforge.export import from_nir
from spikeforge.export.agreement import spikeforge_output
from spikeforge.neurons import CubaLIFParams, DeltaLIFParams, IFParams, LIFParams

nir = pytest.importorskip("nir", reason="NIR import needs the nir package")

DT = 0.1  # ms: snnTorch's step
DT_S = DT / 1e3


def _graph(nodes, edges):
    """A graph as written (nir's own type inference is not what is tested here)."""
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _snntorch_cubalif(n, alpha, beta, threshold=1.0):
    """CubaLIF exactly as snnTorch's exporter writes its Synaptic neuron (dt = 0.1 ms)."""
    tau_syn, tau_mem = DT_S / (1 - alpha), DT_S / (1 - beta)
    return nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem),
                       r=np.full(n, tau_mem / DT_S), w_in=np.full(n, tau_syn / DT_S),
                       v_leak=np.zeros(n), v_threshold=np.full(n, threshold),
                       v_reset=np.zeros(n))


def _chain(*named, n_in=4):
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}), **dict(named)}
    nodes["output"] = nir.Output(output_type={"output": np.array([1])})
    names = ["input", *[k for k, _ in named], "output"]
    return _graph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)))


def test_snntorch_cubalif_weights_mean_one_step_pulses():
    """r = tau_mem/dt, w_in = tau_syn/dt: a spike is one step of amplitude 1, so the
    current jumps by r w_in dt / tau_syn = tau_mem / dt per unit weight; the layer is a
    plain LIF (r, w_in folded into the weights)."""
    w = np.array([[0.5, -0.25, 0.0, 1.0]])
    model = from_nir(_chain(("fc", nir.Linear(weight=w)), ("lif", _snntorch_cubalif(1, 0.9,
                                                                                   0.95))),
                     dt=DT)
    layer = model.network.spec.layers[0]
    assert layer.neuron == LIFParams(tau_mem=2.0, tau_syn=1.0, threshold=1.0)
    np.testing.assert_allclose(model.network.layers[0].weight.detach().numpy(), w * 20.0,
                               rtol=1e-6)
    assert model.readout == "sum" and model.network.spec.dt == DT


def test_affine_bias_becomes_a_constant_current():
    """No input spikes: an Affine bias b into a CubaLI gives I -> r w_in b and
    V -> v_leak + r w_in b (exact closed form at the step ends)."""
    ts, tm, r, w_in, b, vl = 2e-3, 5e-3, 2.0, 0.5, 0.3, 0.1
    li = nir.CubaLI(tau_syn=np.array([ts]), tau_mem=np.array([tm]), r=np.array([r]),
                    v_leak=np.array([vl]), w_in=np.array([w_in]))
    model = from_nir(_chain(("fc", nir.Affine(weight=np.ones((1, 4)), bias=np.array([b]))),
                            ("li", li)), dt=0.5)
    assert isinstance(model.network.spec.layers[0].neuron, CubaLIFParams)
    out = spikeforge_output(model, random_events(n_batch=1, n_units=4, p=0.0, n_steps=60))
    t, c = 0.5e-3 * np.arange(1, 61), r * w_in * b
    expected = vl * (1 - np.exp(-t / tm)) + c * (
        1 - (ts * np.exp(-t / ts) - tm * np.exp(-t / tm)) / (ts - tm))
    np.testing.assert_allclose(out.readout[0, :, 0], expected, rtol=1e-5, atol=1e-7)


def test_norse_lif_and_general_lif():
    """Norse writes LIF with r = 1: a spike (one step at dt) raises v by w dt / tau. With
    v_leak and v_reset it becomes the general delta-synapse model."""
    n, tau = 3, 10e-3
    lif = nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n),
                  v_threshold=np.full(n, 0.8), v_reset=np.zeros(n))
    w = np.full((n, 4), 2.0)
    model = from_nir(_chain(("fc", nir.Linear(weight=w)), ("lif", lif)), dt=1.0)
    assert model.network.spec.layers[0].neuron == DeltaLIFParams(tau_mem=10.0, threshold=0.8)
    np.testing.assert_allclose(model.network.layers[0].weight.detach().numpy(), w * 0.1)
    lif.v_leak, lif.v_reset = np.full(n, 0.2), np.array([-0.1, 0.0, 0.1])
    general = from_nir(_chain(("fc", nir.Linear(weight=w)), ("lif", lif)), dt=1.0)
    neuron = general.network.spec.layers[0].neuron
    assert isinstance(neuron, IFParams) and neuron.tau_mem == 10.0
    assert neuron.v_leak == (0.2,) and neuron.v_reset == (-0.1, 0.0, 0.1)


def test_if_and_integrator():
    n = 2
    graph = _chain(("fc", nir.Affine(weight=np.ones((n, 4)), bias=np.full(n, 5.0))),
                   ("if", nir.IF(r=np.full(n, 2.0), v_threshold=np.ones(n),
                                 v_reset=np.zeros(n))))
    model = from_nir(graph, dt=1.0)
    neuron = model.network.spec.layers[0].neuron
    assert isinstance(neuron, IFParams) and neuron.tau_mem == float("inf")
    assert neuron.drive == (pytest.approx(0.01),)  # r b = 10 per s = 0.01 per ms
    np.testing.assert_allclose(model.network.layers[0].weight.detach().numpy(), 2e-3)
    out = spikeforge_output(model, random_events(n_batch=1, n_units=4, p=0.0, n_steps=250))
    assert out.counts[0].sum() == 2 * 2  # every 100 steps, both neurons
    graph.nodes["if"] = nir.I(r=np.full(n, 2.0))
    assert not from_nir(graph, dt=1.0).network.spec.layers[0].neuron.spiking


def test_recurrent_subgraph_as_snntorch_writes_it_equals_the_flat_layout():
    """snnTorch's RSynaptic: a sub-graph input -> lif <-> w_rec, lif -> output (older
    exports) or the same nodes flat with dotted names (nirtorch 2); Affine biases on the
    input and recurrent weights add up."""
    rng = np.random.default_rng(0)
    n_in, n = 4, 6
    w_in, w_rec = rng.normal(0.05, 0.02, (n, n_in)), rng.normal(0, 0.01, (n, n))
    b_in, b_rec = np.full(n, 0.002), np.full(n, 0.001)
    lif = _snntorch_cubalif(n, 0.9, 0.95)
    sub = _graph(nodes={"input": nir.Input(input_type={"input": np.array([n])}),
                              "lif": lif, "w_rec": nir.Affine(weight=w_rec, bias=b_rec),
                              "output": nir.Output(output_type={"output": np.array([n])})},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
                              ("lif", "output")])
    readout = _snntorch_cubalif(2, 0.8, 0.9)
    top = {"input": nir.Input(input_type={"input": np.array([n_in])}),
           "fc": nir.Affine(weight=w_in, bias=b_in), "fc2": nir.Linear(weight=np.ones((2, n))),
           "out": readout, "output": nir.Output(output_type={"output": np.array([2])})}
    nested = _graph(nodes={**top, "rnn": sub}, edges=[
        ("input", "fc"), ("fc", "rnn"), ("rnn", "fc2"), ("fc2", "out"), ("out", "output")])
    flat = _graph(nodes={**top, "rnn.lif": lif, "rnn.w_rec": sub.nodes["w_rec"]},
                        edges=[("input", "fc"), ("fc", "rnn.lif"), ("rnn.lif", "rnn.w_rec"),
                               ("rnn.w_rec", "rnn.lif"), ("rnn.lif", "fc2"), ("fc2", "out"),
                               ("out", "output")])
    a, b = from_nir(nested, dt=DT), from_nir(flat, dt=DT)
    layer = a.network.spec.layers[0]
    # bias current r w_in b = (tau_mem/dt) (tau_syn/dt) b: 0.003 per step into snnTorch's syn
    assert layer.recurrent and layer.neuron.bias == (pytest.approx(0.003 * 20.0 * 10.0),)
    for pa, pb in zip(a.network.parameters(), b.network.parameters(), strict=True):
        assert torch.equal(pa, pb)
    np.testing.assert_allclose(a.network.layers[0].recurrent_weight.detach().numpy(),
                               w_rec * 20.0, rtol=1e-6)


def test_sinabs_cnn_conv_pool_flatten_become_exact_dense_maps():
    """Sinabs' layout: Conv2d -> IF -> SumPool2d -> Flatten -> Affine -> IF (neuron
    parameters shaped like the feature maps)."""
    rng = np.random.default_rng(0)
    kernel = rng.normal(0.3, 0.2, (2, 1, 3, 3))
    conv = nir.Conv2d(input_shape=(6, 6), weight=kernel, stride=1, padding=1, dilation=1,
                      groups=1, bias=np.array([0.01, -0.02]))
    nodes = {"input": nir.Input(input_type={"input": np.array([1, 6, 6])}), "conv": conv,
             "if1": nir.IF(r=np.ones((2, 6, 6)), v_threshold=np.ones((2, 6, 6))),
             "pool": nir.SumPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)),
             "flat": nir.Flatten(input_type=None, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=rng.normal(0.1, 0.1, (3, 18)), bias=np.zeros(3)),
             "if2": nir.IF(r=np.ones(3), v_threshold=np.ones(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    names = ["input", "conv", "if1", "pool", "flat", "fc", "if2", "output"]
    model = from_nir(_graph(nodes=nodes, edges=list(zip(names[:-1], names[1:],
                                                              strict=True))), dt=1000.0)
    spec = model.network.spec
    assert spec.n_inputs == 36 and [ly.size for ly in spec.layers] == [72, 3]
    image = rng.random((1, 1, 6, 6))
    w1 = model.network.layers[0].weight.detach().double().numpy()
    expected = F.conv2d(torch.from_numpy(image), torch.from_numpy(kernel), padding=1)
    np.testing.assert_allclose(w1 @ image.ravel(), expected.numpy().ravel(), rtol=1e-6)
    maps = rng.random((1, 2, 6, 6))
    w2 = model.network.layers[1].weight.detach().double().numpy()
    pooled = F.avg_pool2d(torch.from_numpy(maps), 2).numpy().ravel() * 4
    np.testing.assert_allclose(w2 @ maps.ravel(), nodes["fc"].weight @ pooled, rtol=1e-6)
    drive = np.asarray(spec.layers[0].neuron.drive) * spec.dt  # per step of 1 s = 1000 ms
    np.testing.assert_allclose(drive, np.repeat([0.01, -0.02], 36))  # bias per channel


def test_parallel_branches_are_summed_and_skip_connections_refused():
    w1, w2 = np.full((3, 4), 0.1), np.full((3, 4), 0.2)
    lif = _snntorch_cubalif(3, 0.9, 0.9)
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "a": nir.Linear(weight=w1), "b": nir.Linear(weight=w2),
             "s": nir.Scale(scale=np.array([1.0, 2.0, 3.0])), "lif": lif,
             "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "a"), ("input", "b"), ("a", "lif"), ("b", "s"), ("s", "lif"),
             ("lif", "output")]
    model = from_nir(_graph(nodes=nodes, edges=edges), dt=DT)
    expected = (w1 + w2 * np.array([1.0, 2.0, 3.0])[:, None]) * 10.0
    np.testing.assert_allclose(model.network.layers[0].weight.detach().numpy(), expected,
                               rtol=1e-6)
    skip = {**nodes, "fc2": nir.Linear(weight=np.ones((3, 3))), "lif2": lif,
            "skip": nir.Linear(weight=np.ones((3, 4)))}
    edges = [("input", "a"), ("a", "lif"), ("lif", "fc2"), ("fc2", "lif2"),
             ("input", "skip"), ("skip", "lif2"), ("lif2", "output")]
    message = r"'input' feeds several neuron nodes \(lif, lif2\).*chain"
    with pytest.raises(SpikeforgeError, match=message):
        from_nir(_graph(nodes=skip, edges=edges), dt=DT)


def test_residual_skip_connection_is_refused_naming_the_node():
    """lif0 -> lif1 -> lif2 with a skip lif0 -> lif2 (a ResNet-style shortcut)."""
    lif = _snntorch_cubalif(3, 0.9, 0.9)
    names = ["lif0", "lif1", "lif2"]
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fc0": nir.Linear(weight=np.ones((3, 4))), "fc1": nir.Linear(weight=np.eye(3)),
             "fc2": nir.Linear(weight=np.eye(3)), "skip": nir.Linear(weight=np.eye(3)),
             **{k: lif for k in names}, "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "fc0"), ("fc0", "lif0"), ("lif0", "fc1"), ("fc1", "lif1"),
             ("lif1", "fc2"), ("fc2", "lif2"), ("lif0", "skip"), ("skip", "lif2"),
             ("lif2", "output")]
    with pytest.raises(SpikeforgeError, match=r"'lif0' feeds several neuron nodes "
                                              r"\(lif1, lif2\): a skip connection"):
        from_nir(_graph(nodes, edges), dt=DT)


@pytest.mark.parametrize("node, expected", [
    (lambda: nir.Threshold(threshold=np.ones(3)),
     "'x' has type Threshold.*follows 'fc' \\(Linear\\).*Heaviside"),
    (lambda: nir.Conv1d(input_shape=4, weight=np.ones((1, 1, 2)), stride=1, padding=0,
                        dilation=1, groups=1, bias=np.zeros(1)), "'x' has type Conv1d.*2-D"),
])  # fmt: skip
def test_inexpressible_nodes_are_refused_naming_node_type_and_reason(node, expected):
    graph = _chain(("fc", nir.Linear(weight=np.ones((3, 4)))), ("x", node()),
                   ("lif", _snntorch_cubalif(3, 0.9, 0.9)))
    with pytest.raises(SpikeforgeError, match=expected):
        from_nir(graph, dt=DT)


# -- Threshold and Delay, checked against NIR's equations (the reference simulator) -------

def _ours(graph):
    """Mark a graph as written in spikeforge's convention (a spike is a Dirac of area 1)."""
    graph.metadata = {"source": "spikeforge", "spikeforge.dt_ms": 1.0}
    return graph


def _spikes(n_in, n_batch=6, n_steps=80, seed=0):
    rng = np.random.default_rng(seed)
    rate = np.linspace(0.03, 0.15, n_batch)[:, None, None]
    return (rng.random((n_batch, n_steps, n_in)) < rate).astype(np.float32)


def _agree(graph, x, exact=True):
    """spikeforge's import vs the reference simulator: identical spikes when thresholds
    are checked on spikeforge's grid; returns Pearson r of all spike counts on a grid 20x
    finer (thresholds every 0.05 ms)."""
    from spikeforge.engine import Events
    from spikeforge.export.nir_reference import simulate

    model = from_nir(graph)
    ours = spikeforge_output(model, Events.from_dense(x))
    if exact:
        grid = simulate(graph, x, 1.0, substeps=1, threshold_on_grid=True)
        for a, b in zip(ours.counts, grid.counts.values(), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(ours.readout, grid.readout, atol=1e-5)
    fine = simulate(graph, x, 1.0, substeps=20)
    a = np.concatenate([c.ravel() for c in ours.counts])
    b = np.concatenate([c.ravel() for c in fine.counts.values()])
    assert a.sum() > 100
    return float(np.corrcoef(a, b)[0, 1])


def _readout(n):
    return nir.CubaLI(tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 10e-3), r=np.ones(n),
                      v_leak=np.zeros(n), w_in=np.full(n, 5e-3))


def test_threshold_after_integrator_is_an_if_neuron():
    """I -> Threshold (the integrator feeding nothing else) is NIR's IF composition: the
    same network as an IF node, and NIR's equations agree with it (measured r = 1.000: V
    jumps only at input arrivals, so the fine grid finds the same crossings)."""
    rng = np.random.default_rng(0)
    n_in, n = 6, 8
    w, w2 = rng.normal(0.3, 0.2, (n, n_in)), rng.normal(0.4, 0.3, (3, n))
    pair = _chain(("fc", nir.Linear(weight=w)), ("i", nir.I(r=np.ones(n))),
                  ("thr", nir.Threshold(threshold=np.full(n, 1.0))),
                  ("fc2", nir.Linear(weight=w2)), ("out", _readout(3)), n_in=n_in)
    node = _chain(("fc", nir.Linear(weight=w)), ("i", nir.IF(r=np.ones(n),
                  v_threshold=np.ones(n), v_reset=np.zeros(n))),
                  ("fc2", nir.Linear(weight=w2)), ("out", _readout(3)), n_in=n_in)
    a, b = from_nir(_ours(pair)), from_nir(_ours(node))
    assert a.network.spec == b.network.spec
    neuron = a.network.spec.layers[0].neuron
    assert isinstance(neuron, IFParams) and neuron.tau_mem == float("inf") and neuron.spiking
    for pa, pb in zip(a.network.parameters(), b.network.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert _agree(pair, _spikes(n_in)) >= 0.95


def test_literal_heaviside_reading_differs_from_the_if_reading():
    """The reference simulator can also run NIR's Threshold literally (a stateless
    Heaviside: the level stays 1 while v > threshold, no reset). Input: a constant bias
    b into I (v = b t), threshold 1: the level switches on at t* = 1/b and an LI behind
    it charges as 1 - exp(-(t - t*)/tau); read as IF, the pair fires every 1/b."""
    from spikeforge.export.nir_reference import simulate

    b, tau = 45.0, 10e-3  # v reaches 1 after 22.2 ms
    graph = _ours(_chain(("bias", nir.Affine(weight=np.zeros((1, 1)), bias=np.array([b]))),
                         ("i", nir.I(r=np.ones(1))),
                         ("thr", nir.Threshold(threshold=np.ones(1))),
                         ("fc", nir.Linear(weight=np.ones((1, 1)))),
                         ("li", nir.LI(tau=np.array([tau]), r=np.ones(1), v_leak=np.zeros(1))),
                         n_in=1))
    x = np.zeros((1, 60, 1))
    literal = simulate(graph, x, 1.0, substeps=10, threshold_reset=False)
    t = np.arange(1, 61) * 1e-3
    expected = np.where(t > 1 / b, 1.0 - np.exp(-(t - 1 / b) / tau), 0.0)
    np.testing.assert_allclose(literal.readout[0, :, 0], expected, atol=0.011)  # t* on 0.1 ms
    fired = simulate(graph, x, 1.0, substeps=10)
    assert fired.counts["i"].sum() == 2  # at 22.2 and 44.4 ms (reset to 0 each time)
    jumps = np.flatnonzero(np.diff(fired.readout[0, :, 0]) > 1.0)  # a pulse of area 1 s
    np.testing.assert_array_equal(jumps + 1, [22, 44])  # each raises the LI by r/tau = 100


def test_threshold_after_leaky_integrators_is_lif_or_cubalif():
    n = 4
    li = nir.LI(tau=np.full(n, 10e-3), r=np.full(n, 10e-3), v_leak=np.zeros(n))
    model = from_nir(_ours(_chain(("fc", nir.Linear(weight=np.ones((n, 4)))), ("li", li),
                                  ("thr", nir.Threshold(threshold=np.full(n, 0.7))),
                                  ("fc2", nir.Linear(weight=np.ones((3, n)))),
                                  ("out", _readout(3)))))
    assert model.network.spec.layers[0].neuron == DeltaLIFParams(tau_mem=10.0, threshold=0.7)
    cuba = _readout(n)
    model = from_nir(_ours(_chain(("fc", nir.Linear(weight=np.ones((n, 4)))), ("li", cuba),
                                  ("thr", nir.Threshold(threshold=np.array(0.5))),
                                  ("fc2", nir.Linear(weight=np.ones((3, n)))),
                                  ("out", _readout(3)))))
    assert model.network.spec.layers[0].neuron == LIFParams(10.0, 5.0, 0.5)


def test_threshold_of_an_integrator_that_also_feeds_another_node_is_refused():
    n = 3
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "fc": nir.Linear(weight=np.ones((n, 4))), "i": nir.I(r=np.ones(n)),
             "thr": nir.Threshold(threshold=np.ones(n)), "out": _readout(n),
             "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("input", "fc"), ("fc", "i"), ("i", "thr"), ("i", "out"), ("thr", "out"),
             ("out", "output")]
    with pytest.raises(SpikeforgeError, match="'thr' has type Threshold.*'i' also feeds 'out'"):
        from_nir(_graph(nodes, edges))


def _delayed_graph(delay_s, where="post", n_in=6, n=8, seed=0):
    rng = np.random.default_rng(seed)
    w, w2 = rng.normal(0.8, 0.4, (n, n_in)), rng.normal(0.5, 0.3, (3, n))
    lif = nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 10e-3), r=np.ones(n),
                      v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n),
                      w_in=np.full(n, 2e-3))
    steps = [("fc", nir.Linear(weight=w)), ("delay", nir.Delay(delay=np.asarray(delay_s)))]
    if where == "pre":
        steps = steps[::-1]
    return _ours(_chain(*steps, ("lif", lif), ("fc2", nir.Linear(weight=w2)),
                        ("out", _readout(3)), n_in=n_in)), w


def test_delay_between_linear_and_neuron_is_per_neuron_delay_rounded_to_dt():
    """Delays are rounded to the nearest step (halves to even: 1.5 -> 2, 2.5 -> 2)."""
    delay = np.array([0.4, 0.6, 1.5, 2.5, 3.2, 0.0, 4.0, 1.0]) * 1e-3
    graph, w = _delayed_graph(delay)
    model = from_nir(graph)
    layer, spec = model.network.layers[0], model.network.spec.layers[0]
    assert spec.delays.mode == "round" and spec.delays.max_ms == 4.0
    expected = np.array([0, 1, 2, 2, 3, 0, 4, 1], dtype=float)
    np.testing.assert_array_equal(layer.delay.detach().numpy(),
                                  np.repeat(expected[:, None], 6, axis=1))
    np.testing.assert_allclose(layer.weight.detach().numpy(), w, rtol=1e-6)
    assert _agree(graph, _spikes(6)) >= 0.95


def test_delay_on_the_input_is_per_input_delay():
    delay = np.array([0.0, 1.0, 2.0, 3.0, 1.0, 5.0]) * 1e-3
    graph, _ = _delayed_graph(delay, where="pre")
    layer = from_nir(graph).network.layers[0]
    np.testing.assert_array_equal(layer.delay.detach().numpy(),
                                  np.repeat([[0, 1, 2, 3, 1, 5]], 8, axis=0))
    assert _agree(graph, _spikes(6)) >= 0.95


def test_unrounded_delays_agree_with_nir_equations_on_a_fine_grid():
    """Delays off the 1 ms grid: the fine-grid reference keeps them (to 0.05 ms), the
    import rounds them; spike counts still agree (measured r = 0.994)."""
    graph, _ = _delayed_graph(np.array([0.3, 0.7, 1.2, 1.8, 2.4, 2.6, 3.3, 3.9]) * 1e-3)
    assert _agree(graph, _spikes(6), exact=False) >= 0.95


def test_two_adjacent_delays_of_one_synapse_are_an_interpolated_delay():
    """Two parallel paths, (1 - f) w after 2 ms and f w after 3 ms, are spikeforge's
    interpolated delay of (2 + f) ms."""
    n_in, n = 4, 3
    w = np.full((n, n_in), 0.9)
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "a": nir.Linear(weight=0.75 * w), "b": nir.Linear(weight=0.25 * w),
             "da": nir.Delay(delay=np.full(n, 2e-3)), "db": nir.Delay(delay=np.full(n, 3e-3)),
             "lif": _readout(n), "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("input", "a"), ("a", "da"), ("da", "lif"), ("input", "b"), ("b", "db"),
             ("db", "lif"), ("lif", "output")]
    model = from_nir(_ours(_graph(nodes, edges)))
    layer, spec = model.network.layers[0], model.network.spec.layers[0]
    assert spec.delays.mode == "interpolate"
    np.testing.assert_allclose(layer.delay.detach().numpy(), 2.25, rtol=1e-6)
    np.testing.assert_allclose(layer.weight.detach().numpy(), w * 5e-3 / 5e-3, rtol=1e-6)
    nodes["c"], nodes["dc"] = nir.Linear(weight=0.1 * w), nir.Delay(delay=np.full(n, 5e-3))
    edges += [("input", "c"), ("c", "dc"), ("dc", "lif")]
    with pytest.raises(SpikeforgeError, match="'lif'.*arrives with 3 different delays"):
        from_nir(_ours(_graph(nodes, edges)))


def test_delayed_bias_is_refused():
    graph, _ = _delayed_graph(np.full(8, 1e-3))
    graph.nodes["fc"] = nir.Affine(weight=graph.nodes["fc"].weight, bias=np.full(8, 0.1))
    with pytest.raises(SpikeforgeError, match="'delay' \\(Delay\\) delays a constant bias"):
        from_nir(graph)
