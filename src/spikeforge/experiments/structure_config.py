"""Config sections for convolutional layers and synaptic delays (``model.conv``,
``model.input_shape``, ``model.delays``) and how they turn into layer specs."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from spikeforge.errors import SpikeforgeError
from spikeforge.model import LayerSpec
from spikeforge.model.connectivity import ConvSpec, DelaySpec


class ConvLayerConfig(BaseModel):
    """One convolutional LIF layer (placed before the dense hidden layers)."""

    model_config = ConfigDict(extra="forbid")

    channels: int = Field(ge=1, description="output feature maps")
    kernel: int = Field(ge=1, description="square kernel size (pixels)")
    stride: int = Field(1, ge=1)
    padding: int = Field(0, ge=0)
    pool: int = Field(1, ge=1, description="average pooling of the output maps (1: none)")


class DelayConfig(BaseModel):
    """Learnable per-synapse delays on every dense hidden layer (and its recurrence)."""

    model_config = ConfigDict(extra="forbid")

    max_ms: float = Field(ge=0, description="delays lie in [0, max_ms] ms")
    init: float | Literal["uniform"] = Field("uniform", description="'uniform' or ms")
    learn: bool = Field(True, description="train the delays (false: fixed random delays)")
    mode: Literal["interpolate", "round"] = "interpolate"
    readout: bool = Field(False, description="also delay the readout's input synapses")


def input_units(model, default: int) -> int:
    """Number of input channels implied by ``model.input_shape`` (else ``default``)."""
    return math.prod(model.input_shape) if model.input_shape else default


def add_structure(model, layers: list[LayerSpec], n_inputs: int, neuron) -> list[LayerSpec]:
    """Prepend ``model.conv`` layers to the dense ``layers`` (hidden..., readout) and attach
    ``model.delays``; raises :class:`SpikeforgeError` for shapes that cannot work."""
    if model.conv and not model.input_shape:
        raise SpikeforgeError(
            "model.conv needs model.input_shape [channels, height, width]; e.g. [1, 8, 8]")
    if model.input_shape:
        if len(model.input_shape) != 3:
            raise SpikeforgeError(
                f"model.input_shape must be [channels, height, width], got {model.input_shape}")
        if math.prod(model.input_shape) != n_inputs:
            raise SpikeforgeError(
                f"model.input_shape {model.input_shape} has {math.prod(model.input_shape)} "
                f"units but the data has {n_inputs} input channels; fix model.input_shape")
    convs: list[LayerSpec] = []
    shape = tuple(model.input_shape or ())
    for index, conv in enumerate(model.conv):
        spec = ConvSpec(shape, conv.channels, conv.kernel, conv.stride, conv.padding, conv.pool)
        spec.validate(f"model.conv[{index}]")
        first = index == 0
        convs.append(LayerSpec(
            size=spec.units, neuron=neuron, conv=spec,
            weight_mean=model.input_weight_mean if first else model.hidden_weight_mean,
            weight_std=model.input_weight_std if first else model.hidden_weight_std,
        ))  # fmt: skip
        shape = spec.pooled_shape
    if convs and len(layers) > 1:  # the first dense layer now follows a conv layer
        layers[0] = dataclasses.replace(layers[0], weight_mean=model.hidden_weight_mean,
                                        weight_std=model.hidden_weight_std)
    if model.delays is not None:
        d = model.delays
        delay = DelaySpec(d.max_ms, d.init, d.learn, d.mode)
        last = len(layers) - 1
        layers = [dataclasses.replace(layer, delays=delay) if i < last or d.readout else layer
                  for i, layer in enumerate(layers)]  # fmt: skip
    return convs + layers
