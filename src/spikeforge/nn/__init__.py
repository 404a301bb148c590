"""PyTorch front end: spiking layers trained by EventProp or surrogate-gradient BPTT."""

from spikeforge.nn.adlif import AdLIF
from spikeforge.nn.alif import ALIF
from spikeforge.nn.bptt import SURROGATES
from spikeforge.nn.bptt_layers import METHODS
from spikeforge.nn.compile import build_network
from spikeforge.nn.layers import LI, LIF
from spikeforge.nn.network import SpikingNetwork
from spikeforge.nn.records import SpikeRecord, event_input, record_of

__all__ = [
    "ALIF", "LI", "LIF", "AdLIF", "METHODS", "SURROGATES", "SpikeRecord", "SpikingNetwork",
    "build_network", "event_input", "record_of",
]
