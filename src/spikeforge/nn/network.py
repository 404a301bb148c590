"""SpikingNetwork: a layered SNN built from a :class:`NetworkSpec`.

Hidden LIF layers pass spikes to each other as sparse records (no dense
[batch, time, neurons] tensors), so training memory grows with the number of spikes.
"""

from __future__ import annotations

import torch
from torch import nn

from spikeforge.events import Events
from spikeforge.model.network import NetworkSpec
from spikeforge.neurons import model_of
from spikeforge.nn.adlif import AdLIF
from spikeforge.nn.alif import ALIF
from spikeforge.nn.bptt import DEFAULT_SLOPE, DEFAULT_SURROGATE
from spikeforge.nn.layers import LIF, SpikingLayer
from spikeforge.nn.records import SpikeRecord, event_input
from spikeforge.nn.structured import structure_layer

LAYER_CLASSES = {"alif": ALIF, "adlif": AdLIF}
"""Module class per spiking neuron model name (LIF for any other model)."""


class SpikingNetwork(nn.Module):
    """Feed-forward stack of LIF layers ending in an LI readout (or a spiking LIF output).

    ``forward`` takes a dense input ``[B, T, n_inputs]`` or an :class:`Events` batch and
    returns the readout: membrane voltages ``[B, T, n_out]`` for an LI readout, or the
    output spikes (dense) for a spiking output layer.

    ``method`` (``"eventprop"`` or ``"bptt"``) and the BPTT surrogate apply to every
    layer; layers whose spec holds :class:`ALIFParams` become :class:`ALIF` layers.
    """

    def __init__(self, spec: NetworkSpec, backend: str = "auto", method: str = "eventprop",
                 surrogate: str = DEFAULT_SURROGATE,
                 surrogate_slope: float = DEFAULT_SLOPE) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        layers: list[nn.Module] = []
        n_in = spec.n_inputs
        for index, layer in enumerate(spec.layers):
            p = layer.neuron
            options = dict(
                dt=spec.dt, backend=backend, method=method, weight_mean=layer.weight_mean,
                weight_std=layer.weight_std, tau_spread=layer.tau_spread,
                train_tau=layer.train_tau, surrogate=surrogate, surrogate_slope=surrogate_slope,
            )  # fmt: skip
            if p.spiking:
                kind = LAYER_CLASSES.get(model_of(p).name, LIF)
                module = kind(n_in, layer.size, recurrent=layer.recurrent, params=p,
                              dense_output=index == len(spec.layers) - 1,
                              recurrent_std=layer.recurrent_std, **options)
            else:
                module = SpikingLayer(n_in, layer.size, p, **options)
            previous = spec.layers[index - 1] if index else None
            layers.append(structure_layer(module, layer, previous, spec.dt, method, backend,
                                          surrogate_slope))  # conv / pooling / delays
            n_in = layer.size
        self.layers = nn.ModuleList(layers)
        self.hidden_outputs: list[torch.Tensor] = []

    @property
    def spiking_output(self) -> bool:
        return self.spec.layers[-1].neuron.spiking

    def forward(self, x: torch.Tensor | Events) -> torch.Tensor:
        if isinstance(x, Events):
            # a raw parameter for dtype and device: a conv layer's .weight would be built
            probe = next(self.layers[0].parameters())
            if probe.is_cuda or getattr(self.layers[0], "backend", "") == "torch":
                # the torch (CUDA) path takes dense input on the device
                x = torch.from_numpy(x.to_dense()).to(probe)
            else:
                x = event_input(x, probe.dtype, self.spec.dt)
        self.hidden_outputs = []
        for layer in self.layers[:-1]:
            x = layer(x)
            self.hidden_outputs.append(x)
        return self.layers[-1](x)

    def spike_records(self) -> list[SpikeRecord]:
        """Records of every spiking layer from the last forward pass (hidden first)."""
        return [layer.last_record for layer in self.layers if layer.params.spiking]
