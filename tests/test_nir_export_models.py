"""NIR export of every neuron model and layer kind spikeforge trains: the graph keeps the
structure (CubaLIF / LIF / IF / I nodes, Conv2d + AvgPool2d, Delay branches, ALIF as a
documented CubaLIF extension), the round trip spikeforge -> NIR file -> spikeforge gives
the same spec, the same tensors and the same spikes, and NIR's own equations (the
reference simulator, :mod:`spikeforge.export.nir_reference`) give spikeforge's spikes:
identically when it checks thresholds on spikeforge's grid, and closely (Pearson r over
samples x units) on a fine grid."""

import warnings

import numpy as np
import pytest
import torch

from export_helpers import delayed_model, random_events, small_model
from spikeforge.errors import SpikeforgeError
from spikeforge.export import read_nir, to_nir, write_nir
from spikeforge.export.agreement import spikeforge_output
from spikeforge.export.network_io import LoadedModel
from spikeforge.model import ALIFParams, LayerSpec, LIFParams, NetworkSpec
from spikeforge.model.connectivity import ConvSpec
from spikeforge.neurons import CubaLIFParams, IFParams
from spikeforge.nn import SpikingNetwork

nir = pytest.importorskip("nir", reason="NIR export needs the nir package")
from spikeforge.export.nir_reference import simulate  # noqa: E402


def _model(layers, n_inputs=12, readout="sum_exp") -> LoadedModel:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*cannot learn with method='eventprop'")
        network = SpikingNetwork(NetworkSpec(n_inputs, tuple(layers), dt=1.0))
    return LoadedModel(network.eval(), readout)


def _general():
    """cuba_lif (v_leak, v_reset, bias, per-neuron tau_mem, recurrent) -> leaky IF with a
    drive -> non-leaky IF -> cuba_lif readout."""
    return _model([
        LayerSpec(10, CubaLIFParams(20.0, 5.0, v_leak=0.1, v_reset=-0.2, bias=0.05,
                                    tau_mem_per_neuron=tuple(np.linspace(10.0, 30.0, 10))),
                  weight_mean=1.5, recurrent=True),
        LayerSpec(8, IFParams(tau_mem=15.0, threshold=0.8, drive=0.01), weight_mean=0.5),
        LayerSpec(6, IFParams(threshold=1.0), weight_mean=0.8),
        LayerSpec(4, CubaLIFParams(15.0, 4.0, spiking=False), weight_mean=0.3)])


def _alif():
    return _model([LayerSpec(10, ALIFParams(20.0, 5.0, 1.0, tau_adapt=100.0, beta=0.3),
                             weight_mean=1.5, recurrent=True),
                   LayerSpec(4, LIFParams(15.0, 4.0, spiking=False), weight_mean=0.3)])


def _conv():
    """conv (pool 2) -> conv reading the pooled maps -> dense readout of conv maps."""
    return _model([
        LayerSpec(4 * 6 * 6, LIFParams(20.0, 5.0, 1.0), weight_mean=2.0,
                  conv=ConvSpec((1, 8, 8), 4, 3, pool=2)),
        LayerSpec(2 * 4 * 4, LIFParams(20.0, 5.0, 1.0), weight_mean=2.0,
                  conv=ConvSpec((4, 3, 3), 2, 2, padding=1)),
        LayerSpec(10, LIFParams(20.0, 5.0, spiking=False))], n_inputs=64)


def _conv_pool_dense():
    return _model([LayerSpec(4 * 6 * 6, LIFParams(20.0, 5.0, 1.0), weight_mean=2.0,
                             conv=ConvSpec((1, 8, 8), 4, 3, pool=2)),
                   LayerSpec(10, LIFParams(20.0, 5.0, spiking=False))], n_inputs=64)


def _tau_spread():
    """Per-neuron time constants (tau_spread) in LIF, ALIF and the LI readout."""
    return _model([
        LayerSpec(10, LIFParams(20.0, 5.0, 1.0), tau_spread=0.2, recurrent=True,
                  weight_mean=1.5),
        LayerSpec(10, ALIFParams(20.0, 5.0, 1.0, tau_adapt=80.0, beta=0.2), tau_spread=0.3),
        LayerSpec(4, LIFParams(15.0, 4.0, spiking=False), tau_spread=0.1, weight_mean=0.3)])


def _if_readout(tau_mem: float):
    """A non-leaky IF layer read out by an IF integrator: NIR I (tau = inf) or LI."""
    return _model([LayerSpec(10, IFParams(threshold=1.0), weight_mean=0.6),
                   LayerSpec(4, IFParams(tau_mem=tau_mem, spiking=False), weight_mean=0.3)])


CASES = {
    "lif_recurrent_spiking_output": lambda: small_model(recurrent=True, spiking_output=True),
    "cuba_lif_and_if": _general,
    "alif": _alif,
    "tau_spread": _tau_spread,
    "if_integrator_readout": lambda: _if_readout(float("inf")),
    "if_leaky_readout": lambda: _if_readout(12.0),
    "delays_round_recurrent": lambda: delayed_model("round", recurrent=True),
    "delays_interpolated": lambda: delayed_model("interpolate"),
    "conv_pool_conv": _conv,
    "conv_pool_dense": _conv_pool_dense,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_is_exact_and_nir_equations_agree(tmp_path, case):
    model = CASES[case]()
    path = tmp_path / "net.nir"
    write_nir(model, path)
    back = read_nir(path)
    assert back.network.spec == model.network.spec
    assert back.readout == model.readout
    for (key, a), (_, b) in zip(model.network.state_dict().items(),
                                back.network.state_dict().items(), strict=True):
        assert torch.equal(a, b), key
    n_units = model.network.spec.n_inputs
    events = random_events(n_batch=3, n_steps=40, n_units=n_units, p=0.1)
    ours, theirs = spikeforge_output(model, events), spikeforge_output(back, events)
    assert sum(c.sum() for c in ours.counts) > 100
    for a, b in zip(ours.counts, theirs.counts, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ours.readout, theirs.readout)
    # NIR's equations on spikeforge's grid (exact integration, thresholds at step ends)
    ref = simulate(nir.read(path), events.to_dense(np.float64), 1.0, substeps=1,
                   threshold_on_grid=True)
    for a, b in zip(ours.counts, ref.counts.values(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.readout, ref.readout, atol=2e-5)


def test_graph_keeps_structure():
    conv = to_nir(_conv())
    kinds = {k: type(v).__name__ for k, v in conv.nodes.items()}
    assert kinds["conv0"] == "Conv2d" and kinds["pool0"] == "AvgPool2d"
    assert kinds["conv1"] == "Conv2d" and kinds["flat2"] == "Flatten"
    assert not any(k.startswith("fc") and k != "fc2" for k in kinds)  # no dense conv maps
    assert conv.nodes["conv0"].weight.shape == (4, 1, 3, 3)
    assert conv.nodes["lif0"].tau_mem.shape == (4, 6, 6)
    np.testing.assert_array_equal(conv.nodes["pool0"].kernel_size, [2, 2])
    general = to_nir(_general())
    assert [type(general.nodes[k]).__name__ for k in ("lif0", "lif1", "lif2", "out")] == [
        "CubaLIF", "LIF", "IF", "CubaLI"]
    assert type(general.nodes["fc0"]).__name__ == "Affine"  # the cuba_lif bias current
    np.testing.assert_allclose(general.nodes["fc0"].bias * general.nodes["lif0"].w_in, 0.05)
    np.testing.assert_allclose(general.nodes["fc1"].bias, 0.01 * 1e3)  # drive per s
    np.testing.assert_allclose(general.nodes["lif1"].r, general.nodes["lif1"].tau)
    assert type(to_nir(_if_readout(float("inf"))).nodes["out"]).__name__ == "I"
    assert type(to_nir(_if_readout(12.0)).nodes["out"]).__name__ == "LI"
    alif = to_nir(_alif()).nodes["lif0"]
    assert type(alif).__name__ == "CubaLIF"
    assert "tau_adapt" in alif.metadata["spikeforge.extension"]


def test_trained_time_constants_come_back_as_fixed_per_neuron_values(tmp_path):
    """A layer with trained per-neuron taus (train_tau) imports with the same taus, fixed
    (train_tau is set again to train them: a model file must load with EventProp)."""
    torch.manual_seed(0)
    spec = NetworkSpec(12, (LayerSpec(10, LIFParams(20.0, 5.0, 1.0), tau_spread=0.2,
                                      train_tau=True, weight_mean=1.5),
                            LayerSpec(4, LIFParams(15.0, 4.0, spiking=False))))
    model = LoadedModel(SpikingNetwork(spec, method="bptt").eval(), "sum_exp")
    with torch.no_grad():
        model.network.layers[0].log_tau_mem.add_(0.1)  # as if trained
    write_nir(model, tmp_path / "t.nir")
    back = read_nir(tmp_path / "t.nir")
    layer = back.network.spec.layers[0]
    assert layer.tau_spread == 0.2 and not layer.train_tau
    assert torch.equal(back.network.layers[0].log_tau_mem, model.network.layers[0].log_tau_mem)
    events = random_events(n_batch=3, seed=2)
    np.testing.assert_array_equal(spikeforge_output(model, events).counts[0],
                                  spikeforge_output(back, events).counts[0])


def test_delays_become_delay_branches_one_per_step():
    model = delayed_model("round")
    graph = to_nir(model)
    layer = model.network.layers[0]
    steps = np.rint(layer.clamped_delays()[0].detach().numpy()).astype(int)
    branches = [k for k in graph.nodes if k.startswith("delay_fc0_d")]
    assert sorted(int(k.rsplit("d", 1)[1]) for k in branches) == sorted(
        set(np.unique(steps)) - {0})
    q = int(steps.max())
    np.testing.assert_allclose(graph.nodes[f"delay_fc0_d{q}"].delay, q * 1e-3)
    w = layer.weight.detach().double().numpy()
    np.testing.assert_array_equal(graph.nodes[f"fc0_d{q}"].weight, w * (steps == q))


def _graded_input(n_inputs: int, n_batch: int = 8, n_steps: int = 150, seed: int = 4):
    """Random input spikes with a rate per sample from 2 % to 10 % per step: counts vary
    across samples as well as units."""
    from spikeforge.engine import Events

    rng = np.random.default_rng(seed)
    rate = np.linspace(0.02, 0.1, n_batch)[:, None, None]
    return Events.from_dense((rng.random((n_batch, n_steps, n_inputs)) < rate)
                             .astype(np.float32))


@pytest.mark.parametrize("case", [
    "delays_round_recurrent", "alif",
    pytest.param("lif_recurrent_spiking_output", marks=pytest.mark.slow),
    pytest.param("cuba_lif_and_if", marks=pytest.mark.slow),
])
def test_fine_grid_nir_equations_agree_with_spikeforge(case):
    """Continuous time (thresholds checked every dt/20): spike counts of every layer
    correlate with spikeforge's over samples x neurons. Weights scaled to 0.6 for moderate
    rates (spikeforge fires at most once per 1 ms step, NIR's equations may fire more
    often). Measured: r = 0.998 (delays), 0.995 (ALIF), 0.978 (LIF, recurrent, spiking
    output), 0.961 (cuba_lif and IF)."""
    model = CASES[case]()
    with torch.no_grad():
        for layer in model.network.layers:
            weight = (layer.parametrizations.weight.original
                      if hasattr(layer, "parametrizations") else layer.weight)
            weight.mul_(0.6)
    events = _graded_input(model.network.spec.n_inputs)
    ours = spikeforge_output(model, events)
    ref = simulate(to_nir(model), events.to_dense(np.float64), 1.0, substeps=20)
    a = np.concatenate([c.ravel() for c in ours.counts])
    b = np.concatenate([c.ravel() for c in ref.counts.values()])
    assert a.sum() > 500
    assert np.corrcoef(a, b)[0, 1] >= 0.95


def _adlif(learn: bool = False):
    from spikeforge.neurons import AdLIFParams

    return _model([LayerSpec(10, AdLIFParams(20.0, 5.0, 1.0, tau_adapt=80.0, a=0.4, b=0.3,
                                             learn_adaptation=learn),
                             weight_mean=1.5, recurrent=True),
                   LayerSpec(4, LIFParams(15.0, 4.0, spiking=False), weight_mean=0.3)])


def test_adlif_round_trip_is_exact_through_its_extension(tmp_path):
    """adLIF is written as a CubaLIF with its adaptation current in the documented
    ``spikeforge.extension`` metadata and read back as the same adLIF layer."""
    model = _adlif()
    path = tmp_path / "adlif.nir"
    write_nir(model, path)
    node = nir.read(path).nodes["lif0"]
    assert type(node).__name__ == "CubaLIF"
    assert "tau_adapt dw/dt = a v - w" in node.metadata["spikeforge.extension"]
    back = read_nir(path)
    assert back.network.spec == model.network.spec
    events = random_events(n_batch=3, n_steps=60, n_units=12, p=0.1)
    ours, theirs = spikeforge_output(model, events), spikeforge_output(back, events)
    assert ours.counts[0].sum() > 50
    np.testing.assert_array_equal(ours.counts[0], theirs.counts[0])
    np.testing.assert_array_equal(ours.readout, theirs.readout)
    # the adaptation matters: the same node read as a plain CubaLIF fires differently
    plain = LIFParams(20.0, 5.0, 1.0)
    lif_model = _model([LayerSpec(10, plain, weight_mean=1.5, recurrent=True),
                        LayerSpec(4, LIFParams(15.0, 4.0, spiking=False), weight_mean=0.3)])
    assert spikeforge_output(lif_model, events).counts[0].sum() > ours.counts[0].sum()


def test_adlif_with_learned_adaptation_is_refused_naming_the_fix(tmp_path):
    with pytest.raises(SpikeforgeError, match="per-neuron a, b, tau_w"):
        write_nir(_adlif(learn=True), tmp_path / "x.nir")
