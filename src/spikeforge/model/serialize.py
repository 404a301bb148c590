"""A :class:`NetworkSpec` as plain data (for model files) and back.

Each layer's neuron parameters are stored with the name of their neuron model, so a
file written for any registered model (LIF, ALIF, delta-synapse LIF, the NIR import
models ...) rebuilds the same parameter class; conv and delay specs are rebuilt too.
Files written before the model name was stored hold LIF parameters.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from spikeforge.errors import SpikeforgeError
from spikeforge.model.connectivity import ConvSpec, DelaySpec
from spikeforge.model.network import LayerSpec, NetworkSpec
from spikeforge.neurons import MODELS, model_of

NEURON_MODEL_KEY = "neuron_model"


def spec_to_dict(spec: NetworkSpec) -> dict[str, Any]:
    """Plain-data form of ``spec`` (JSON/torch-save friendly)."""
    data = asdict(spec)
    for layer, plain in zip(spec.layers, data["layers"], strict=True):
        plain[NEURON_MODEL_KEY] = model_of(layer.neuron).name
    return data


def _params_class(name: str) -> type:
    for params_type, model in MODELS.items():
        if model.name == name:
            return params_type
    known = ", ".join(model.name for model in MODELS.values())
    raise SpikeforgeError(f"the model file uses the neuron model {name!r}, which this "
                          f"spikeforge does not know (known: {known}); upgrade spikeforge")


def _rebuild(cls: type, values: dict[str, Any]):
    """``cls(**values)`` with list values turned back into tuples where the field is one."""
    kinds = {f.name: f.type for f in fields(cls)}
    return cls(**{key: tuple(value) if isinstance(value, list) and "tuple" in str(kinds.get(key))
                  else value for key, value in values.items()})


def spec_from_dict(data: dict[str, Any]) -> NetworkSpec:
    """The :class:`NetworkSpec` stored by :func:`spec_to_dict`."""
    layers = []
    for plain in data["layers"]:
        plain = dict(plain)
        neuron_cls = _params_class(plain.pop(NEURON_MODEL_KEY, "lif"))
        plain["neuron"] = _rebuild(neuron_cls, plain["neuron"])
        if plain.get("conv") is not None:
            plain["conv"] = _rebuild(ConvSpec, plain["conv"])
        if plain.get("delays") is not None:
            plain["delays"] = _rebuild(DelaySpec, plain["delays"])
        layers.append(LayerSpec(**plain))
    return NetworkSpec(n_inputs=int(data["n_inputs"]), layers=tuple(layers), dt=float(data["dt"]))
