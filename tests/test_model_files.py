"""Model files round-trip every neuron model and structured layer (spec and weights)."""

import warnings

import pytest
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.export.network_io import LoadedModel, load_model_file, save_model_file
from spikeforge.model import ALIFParams, LayerSpec, LIFParams, NetworkSpec
from spikeforge.model.connectivity import ConvSpec, DelaySpec
from spikeforge.model.serialize import spec_from_dict, spec_to_dict
from spikeforge.neurons import MODELS, DeltaLIFParams
from spikeforge.nn import build_network

READOUT = LayerSpec(3, LIFParams(spiking=False))


def _spiking_params():
    """Default parameters of every registered spiking neuron model."""
    out = []
    for params_type in MODELS:
        params = params_type()
        if params.spiking:
            out.append(params)
    return out


@pytest.mark.parametrize("params", _spiking_params(), ids=lambda p: type(p).__name__)
def test_spec_round_trip_keeps_the_neuron_model(params):
    spec = NetworkSpec(5, (LayerSpec(4, params, recurrent=True), READOUT))
    again = spec_from_dict(spec_to_dict(spec))
    assert again == spec
    assert type(again.layers[0].neuron) is type(params)


def test_conv_delay_and_alif_model_files_reload_with_the_same_outputs(tmp_path):
    specs = {
        "alif": NetworkSpec(5, (LayerSpec(6, ALIFParams(beta=0.5), weight_mean=1.0), READOUT)),
        "delta": NetworkSpec(5, (LayerSpec(6, DeltaLIFParams(), weight_mean=1.0), READOUT)),
        "delays": NetworkSpec(5, (LayerSpec(6, weight_mean=1.0, delays=DelaySpec(max_ms=4.0)),
                                  READOUT)),
        "conv": NetworkSpec(2 * 4 * 4, (LayerSpec(3 * 4 * 4, weight_mean=1.0, conv=ConvSpec(
            in_shape=(2, 4, 4), channels=3, kernel=3, padding=1)), READOUT)),
    }
    x = (torch.rand(2, 30, 5) < 0.3).float()
    for name, spec in specs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the delta model warns that it cannot learn
            torch.manual_seed(0)
            network = build_network(spec)
            path = tmp_path / f"{name}.pt"
            save_model_file(path, LoadedModel(network, "sum"))
            loaded = load_model_file(path)
        assert loaded.network.spec == spec, name
        inputs = x if spec.n_inputs == 5 else (torch.rand(2, 30, 32) < 0.3).float()
        with torch.no_grad():
            torch.testing.assert_close(loaded.network(inputs), network(inputs), msg=name)


def test_unknown_neuron_model_is_a_clear_error():
    data = spec_to_dict(NetworkSpec(5, (LayerSpec(4), READOUT)))
    data["layers"][0]["neuron_model"] = "hodgkin_huxley"
    with pytest.raises(SpikeforgeError, match="neuron model 'hodgkin_huxley'.*upgrade"):
        spec_from_dict(data)
