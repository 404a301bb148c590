"""Energy accounting: operation counts checked against a brute-force dense count."""

import numpy as np
import pytest
import torch

from spikeforge.energy import count_network_ops, dense_macs, fan_out, sops_from_counts
from spikeforge.engine import Events, NeuronArrays, forward
from spikeforge.errors import SpikeforgeError
from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
from spikeforge.nn import SpikingNetwork


def _net(recurrent=False):
    spec = NetworkSpec(
        n_inputs=12,
        layers=(LayerSpec(16, LIFParams(20.0, 5.0, 1.0), recurrent=recurrent, weight_mean=1.5),
                LayerSpec(4, LIFParams(20.0, 5.0, spiking=False))),
        dt=1.0,
    )
    torch.manual_seed(1)
    return SpikingNetwork(spec)


def _events(n_batch=3, n_steps=30, n_units=12, p=0.15, seed=0):
    rng = np.random.default_rng(seed)
    return Events.from_dense((rng.random((n_batch, n_steps, n_units)) < p).astype(np.float32))


def test_fan_out_and_sops_from_counts():
    w = np.array([[1.0, 0.0, 2.0], [0.5, 0.0, 0.0]])  # [out=2, in=3]
    assert fan_out(w).tolist() == [2, 0, 1]
    counts = np.array([[1, 5, 2], [0, 1, 3]])
    assert sops_from_counts(counts, fan_out(w)).tolist() == [1 * 2 + 2 * 1, 3]
    assert sops_from_counts(counts, 4).tolist() == [32, 16]
    with pytest.raises(SpikeforgeError, match="2-D"):
        fan_out(np.zeros(3))


@pytest.mark.parametrize("recurrent", [False, True])
def test_network_ops_match_dense_brute_force(recurrent):
    net, ev = _net(recurrent), _events()
    with torch.no_grad():
        net.layers[0].weight[0, 3] = 0.0  # one pruned synapse: fan-out of input 3 is 15
    ops = count_network_ops(net, ev)
    x = ev.to_dense(np.float64)
    lif = net.layers[0]
    w_in = lif.weight.detach().double().numpy().T
    w_rec = lif.recurrent_weight.detach().double().numpy().T if recurrent else None
    neurons = NeuronArrays.from_params(lif.params, w_in.shape[1], 1.0, np.float64)
    spikes = forward(x, w_in, w_rec, neurons, "reference").to_dense()
    # brute force: every (sample, step, unit) event times the non-zero weights it drives
    expect_in = (x.sum(axis=1) * (w_in != 0).sum(axis=1)).sum(axis=1).mean()
    hidden_counts = spikes.sum(axis=1)
    expect_rec = (hidden_counts * (w_rec != 0).sum(axis=1)).sum(axis=1).mean() if recurrent else 0
    expect_out = (hidden_counts * 4).sum(axis=1).mean()
    assert spikes.sum() > 0
    assert ops.layers[0].sops == pytest.approx(expect_in + expect_rec)
    assert ops.layers[0].spikes == pytest.approx(spikes.sum() / 3)
    assert ops.layers[1].sops == pytest.approx(expect_out)
    assert ops.layers[1].spikes == 0.0
    assert ops.input_events == pytest.approx(x.sum() / 3)
    assert ops.sops == pytest.approx(expect_in + expect_rec + expect_out)
    assert ops.macs_per_inference == dense_macs(12, 16, recurrent) + 16 * 4
    assert ops.macs_per_step == ops.macs_per_inference * 30
    assert ops.neuron_updates == (16 + 4) * 30


def test_modelled_energy_arithmetic():
    from spikeforge.energy.platforms import PLATFORMS, modelled_energy

    plat = {p.name: p for p in PLATFORMS}
    fp32 = modelled_energy(plat["CMOS 45nm fp32"], sops=1000, neuron_updates=100, dt_ms=1.0,
                           macs_per_inference=500, macs_per_step=20000)
    assert fp32["snn_synaptic_only_j"] == pytest.approx(1000 * 0.9e-12)
    assert fp32["snn_j"] == pytest.approx(1000 * 0.9e-12 + 100 * (3 * 3.7e-12 + 2 * 0.9e-12))
    assert fp32["ann_per_inference_j"] == pytest.approx(500 * 4.6e-12)
    assert fp32["ann_per_step_j"] == pytest.approx(20000 * 4.6e-12)
    loihi = modelled_energy(plat["Loihi"], 1000, 100, 1.0, 500, 20000)
    assert loihi["snn_j"] == pytest.approx(1000 * 23.6e-12) and loihi["ann_per_step_j"] is None
    spinn = modelled_energy(plat["SpiNNaker"], 10, 4, 0.5, 1, 1)
    assert spinn["snn_j"] == pytest.approx(10 * 43e-9 + 4 * 100e-9 * 0.5)
    assert all(p.source for p in PLATFORMS) and len(PLATFORMS) >= 3


def test_rapl_counter_reads_powercap_files(tmp_path):
    from spikeforge.energy.measure import Counter, measure, rapl_counter

    assert "no " in rapl_counter(tmp_path / "missing")
    dom = tmp_path / "intel-rapl:0"
    dom.mkdir()
    (dom / "energy_uj").write_text("5000000\n")
    (dom / "max_energy_range_uj").write_text("262143328850\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # sub-domain: must not be double counted
    (tmp_path / "intel-rapl:0:0" / "energy_uj").write_text("999999999\n")
    counter = rapl_counter(tmp_path)
    assert isinstance(counter, Counter) and counter.read() == pytest.approx(5.0)
    calls = []

    def work():  # each call "uses" 2 J on the fake counter
        calls.append(1)
        (dom / "energy_uj").write_text(str(5000000 + 2000000 * len(calls)))

    result = measure(work, repeats=3, counter=counter, min_seconds=0.0)
    assert result.joules == pytest.approx(2.0) and result.seconds >= 0


def test_energy_report_on_digits_run(tmp_path):
    from export_helpers import cli, untrained_digits_run

    run = untrained_digits_run(tmp_path)
    _, out, _ = cli("energy", str(run), "--samples", "30", "--repeats", "2")
    assert "SOPs" in out and "MACs" in out
    for name in ("CMOS 45nm fp32", "Loihi", "TrueNorth", "SpiNNaker"):
        assert name in out
    assert "MODELLED" in out and "MEASURED" in out and "us/inference" in out
    from spikeforge.energy.measure import rapl_counter

    if not hasattr(rapl_counter(), "read"):
        assert "not available here" in out
    import json

    report = json.loads((run / "energy.json").read_text())
    assert report["counts"]["sops"] > 0 and report["counts"]["macs_per_inference"] == 64 * 32 + 320
    assert (run / "energy.png").stat().st_size > 1000
