"""PyTorch front end: spiking layers whose backward pass is EventProp."""

from spikeforge.nn.layers import LI, LIF
from spikeforge.nn.network import SpikingNetwork
from spikeforge.nn.records import SpikeRecord, event_input, record_of

__all__ = ["LI", "LIF", "SpikeRecord", "SpikingNetwork", "event_input", "record_of"]
