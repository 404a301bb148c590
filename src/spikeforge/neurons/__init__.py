"""Neuron models as plug-ins: each model's parameters and maths, stated once.

See :mod:`spikeforge.neurons.base` for the contract every model follows and
``docs/architecture.md`` for how to add one (one file plus a line in :data:`MODELS`).
"""

from __future__ import annotations

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons import adlif, alif, cuba_lif, delta_lif, if_, lif
from spikeforge.neurons.adlif import AdLIFParams
from spikeforge.neurons.alif import ALIFParams
from spikeforge.neurons.base import FEATURES, NeuronModel
from spikeforge.neurons.cuba_lif import CubaLIFParams
from spikeforge.neurons.delta_lif import DeltaLIFParams
from spikeforge.neurons.if_ import IFParams
from spikeforge.neurons.lif import LIFParams

MODELS: dict[type, NeuronModel] = {
    lif.LIFParams: lif.MODEL,
    alif.ALIFParams: alif.MODEL,
    adlif.AdLIFParams: adlif.MODEL,
    delta_lif.DeltaLIFParams: delta_lif.MODEL,
    cuba_lif.CubaLIFParams: cuba_lif.MODEL,
    if_.IFParams: if_.MODEL,
}
"""Registry: parameter dataclass -> its neuron model."""


def model_of(params) -> NeuronModel:
    """The neuron model whose parameter type is exactly ``type(params)``."""
    try:
        return MODELS[type(params)]
    except KeyError:
        raise SpikeforgeError(
            f"no neuron model is registered for {type(params).__name__}; "
            f"known: {', '.join(t.__name__ for t in MODELS)}"
        ) from None


__all__ = ["ALIFParams", "AdLIFParams", "CubaLIFParams", "DeltaLIFParams", "FEATURES",
           "IFParams", "LIFParams", "MODELS", "NeuronModel", "model_of"]
