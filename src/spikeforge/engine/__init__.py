"""How networks run: sparse-event forward kernels and EventProp adjoint kernels."""

from spikeforge.engine.events import Events
from spikeforge.engine.layers import (
    BACKENDS,
    LayerGrads,
    NeuronArrays,
    li_backward,
    li_forward,
    lif_backward,
    lif_forward,
)

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
