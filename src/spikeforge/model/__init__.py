"""What a network *is*: neuron parameters, layers and containers (plain data, no maths)."""

from spikeforge.model.network import LayerSpec, NetworkSpec
from spikeforge.model.neurons import LIFParams, StepDecays

__all__ = ["LIFParams", "LayerSpec", "NetworkSpec", "StepDecays"]
