"""How networks run: generic forward and EventProp drivers for every neuron model.

``api`` (dense synapses) and ``delay_layers`` (per-synapse delays) dispatch to the
compiled CPU drivers (``event_loop``, ``delay_loop``, bound to a neuron model by
``specialise``) or to the dense NumPy/torch loop (``dense_loop``: the reference oracle,
the CUDA path and the BPTT forward).
"""

from spikeforge.engine.api import (
    BACKENDS,
    DEFAULT_MIN_VDOT,
    LayerGrads,
    NeuronArrays,
    backward,
    forward,
)
from spikeforge.events import Events

__all__ = ["BACKENDS", "DEFAULT_MIN_VDOT", "Events", "LayerGrads", "NeuronArrays", "backward",
           "forward"]
