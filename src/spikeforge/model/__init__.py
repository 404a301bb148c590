"""What a network *is*: neuron parameters, layers and containers (plain data, no maths)."""

from spikeforge.model.network import LayerSpec, NetworkSpec
from spikeforge.model.neurons import ALIFParams, LIFParams

__all__ = ["ALIFParams", "LIFParams", "LayerSpec", "NetworkSpec"]
