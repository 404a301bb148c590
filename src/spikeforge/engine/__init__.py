"""How networks run: sparse-event forward kernels and EventProp adjoint kernels."""

from spikeforge.engine.layers import (
    BACKENDS,
    LayerGrads,
    NeuronArrays,
    li_backward,
    li_forward,
    lif_backward,
    lif_forward,
)
from spikeforge.events import Events

__all__ = [
    "BACKENDS",
    "Events",
    "LayerGrads",
    "NeuronArrays",
    "li_backward",
    "li_forward",
    "lif_backward",
    "lif_forward",
]
