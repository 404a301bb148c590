"""Operation counts read each layer's kind (spiking, recurrent) from the network spec:
a recurrent network with per-synapse delays is counted like a plain one."""

import numpy as np
import pytest

from export_helpers import delayed_model, random_events
from spikeforge.energy import count_network_ops, dense_macs


def _outgoing_synapses(weight) -> np.ndarray:
    """Non-zero synapses leaving each presynaptic unit of a [out, in] weight."""
    return (weight.detach().double().numpy() != 0).sum(axis=0)


@pytest.mark.parametrize("mode", ["round", "interpolate"])
def test_delayed_recurrent_network_counts_match_brute_force(mode):
    network = delayed_model(mode, recurrent=True).network
    events = random_events(n_batch=4, n_steps=40)
    ops = count_network_ops(network, events)
    hidden, readout = network.layers
    spikes = network.spike_records()[0].events.to_dense(np.float64)  # [B, T, 20]
    x = events.to_dense(np.float64)
    per_sample_in = (x.sum(axis=1) * _outgoing_synapses(hidden.weight)).sum(axis=1)
    per_sample_rec = (spikes.sum(axis=1) * _outgoing_synapses(hidden.recurrent_weight)).sum(axis=1)
    per_sample_out = (spikes.sum(axis=1) * _outgoing_synapses(readout.weight)).sum(axis=1)
    assert spikes.sum() > 0
    first, second = ops.layers
    assert (first.recurrent, second.recurrent) == (True, False)
    assert first.spikes == pytest.approx(spikes.sum() / 4) and second.spikes == 0.0
    assert first.sops == pytest.approx(np.mean(per_sample_in + per_sample_rec))
    assert second.input_events == pytest.approx(spikes.sum() / 4)
    assert second.sops == pytest.approx(np.mean(per_sample_out))
    assert ops.macs_per_inference == dense_macs(12, 20, True) + 20 * 4
    assert ops.neuron_updates == (20 + 4) * 40
