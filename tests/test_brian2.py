"""Brian2 export: identical spikes to spikeforge, runnable script, agreement check, bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest

from export_helpers import cli, random_events, small_model, tiny_digits_run, untrained_digits_run
from spikeforge.errors import SpikeforgeError
from spikeforge.export import simulator_export as se
from spikeforge.export.agreement import spikeforge_output

try:
    se.require("brian2")
except SpikeforgeError as exc:  # pragma: no cover - depends on the environment
    if os.environ.get("CI", "").lower() == "true":  # a test dependency: CI must have it
        raise
    pytest.skip(f"brian2 not installable/importable here: {exc}", allow_module_level=True)


@pytest.mark.parametrize("recurrent", [False, True])
def test_brian2_spikes_identical_to_spikeforge(recurrent):
    model = small_model(recurrent=recurrent)
    events = random_events(n_batch=4, n_steps=30)
    ref, other = spikeforge_output(model, events), se.simulate(model, "brian2", events)
    assert sum(c.sum() for c in ref.counts) > 100
    for a, b in zip(ref.counts, other.counts, strict=True):
        np.testing.assert_array_equal(a, b)
    # float32 kernels vs brian2's float64: voltages agree to float32 precision
    np.testing.assert_allclose(ref.readout, other.readout, atol=1e-4)


def test_live_network_object_runs():
    model = small_model()
    events = random_events(n_batch=2, n_steps=20)
    network, monitors = se.live_network(model, "brian2", events)
    import brian2

    assert isinstance(network, brian2.Network)
    network.run(20 * brian2.ms)
    assert monitors["voltage"].v.shape == (2 * 4, 20)


def test_layer_brian2_cannot_express_is_named(tmp_path):
    from spikeforge.export.network_io import LoadedModel
    from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
    from spikeforge.nn import SpikingNetwork

    spec = NetworkSpec(3, (LayerSpec(4, LIFParams(10.0, 5.0)),
                           LayerSpec(2, LIFParams(8.0, 8.0, spiking=False))))
    model = LoadedModel(SpikingNetwork(spec), "sum")
    with pytest.raises(SpikeforgeError, match="layer 1: tau_mem == tau_syn.*brian2"):
        se.write_simulator_export(model, "brian2", tmp_path / "out")
    assert not (tmp_path / "out" / "weights.npz").exists()


def test_cli_check_on_digits(tmp_path):
    run = untrained_digits_run(tmp_path)
    code, out, _ = cli("export", str(run), "--to", "brian2", "--check", "--samples", "40")
    assert "class agreement          100.00 %" in out
    assert "spike-count correlation  1.0000" in out
    assert (run / "export_brian2" / "agreement.json").is_file()


@pytest.mark.slow
def test_standalone_script_matches(tmp_path):
    model = small_model()
    events = random_events(n_batch=3, n_steps=30)
    files = se.write_simulator_export(model, "brian2", tmp_path)
    np.savez(tmp_path / "inputs.npz", ptr=events.ptr, steps=events.step, units=events.unit,
             n_steps=events.n_steps)
    subprocess.run([sys.executable, str(files[1]), str(files[0]), str(tmp_path / "inputs.npz"),
                    str(tmp_path / "res.npz")], check=True, timeout=600)
    res = np.load(tmp_path / "res.npz")
    ref = spikeforge_output(model, events)
    np.testing.assert_array_equal(res["counts0"], ref.counts[0])
    np.testing.assert_allclose(res["readout"], ref.readout, atol=1e-4)


@pytest.mark.slow
def test_trained_digits_agreement_at_least_99_percent(tmp_path):
    run = tiny_digits_run(tmp_path)
    _, out, _ = cli("export", str(run), "--to", "brian2", "--check", "--json")
    import json

    report = json.loads(out.strip().splitlines()[-1])["agreement"][0]
    assert report["n_samples"] == 269 and report["class_agreement"] >= 0.99


def test_per_synapse_delays_with_recurrence_are_exact():
    from export_helpers import delayed_model

    model = delayed_model("interpolate", recurrent=True)
    events = random_events(n_batch=3, n_steps=30)
    ref, other = spikeforge_output(model, events), se.simulate(model, "brian2", events)
    assert ref.counts[0].sum() > 100
    np.testing.assert_array_equal(ref.counts[0], other.counts[0])
    np.testing.assert_allclose(ref.readout, other.readout, atol=1e-4)
