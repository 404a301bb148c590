"""SpikingNetwork: a layered SNN built from a :class:`NetworkSpec`.

Hidden LIF layers pass spikes to each other as sparse records (no dense
[batch, time, neurons] tensors), so training memory grows with the number of spikes.
"""

from __future__ import annotations

import torch
from torch import nn

from spikeforge.events import Events
from spikeforge.model.network import NetworkSpec
from spikeforge.model.neurons import ALIFParams
from spikeforge.nn.alif import ALIF
from spikeforge.nn.bptt import DEFAULT_SLOPE, DEFAULT_SURROGATE
from spikeforge.nn.delays import DelayedLIF
from spikeforge.nn.layers import LI, LIF
from spikeforge.nn.records import SpikeRecord, event_input
from spikeforge.nn.structured import structure_layer


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
            is_last = index == len(spec.layers) - 1
            common = dict(method=method, tau_spread=layer.tau_spread, train_tau=layer.train_tau)
            if p.spiking:
                kind, extra = LIF, {}
                if isinstance(p, ALIFParams):
                    kind, extra = ALIF, dict(tau_adapt=p.tau_adapt, beta=p.beta)
                layers.append(
                    kind(
                        n_in, layer.size, recurrent=layer.recurrent, tau_mem=p.tau_mem,
                        tau_syn=p.tau_syn, threshold=p.threshold, dt=spec.dt,
                        dense_output=is_last, backend=backend, weight_mean=layer.weight_mean,
                        weight_std=layer.weight_std, recurrent_std=layer.recurrent_std,
                        surrogate=surrogate, surrogate_slope=surrogate_slope, **common, **extra,
                    )  # fmt: skip
                )
            else:
                layers.append(
                    LI(
                        n_in, layer.size, tau_mem=p.tau_mem, tau_syn=p.tau_syn, dt=spec.dt,
                        backend=backend, weight_mean=layer.weight_mean,
                        weight_std=layer.weight_std, **common,
                    )  # fmt: skip
                )
            previous = spec.layers[index - 1] if index else None
            layers[-1] = structure_layer(layers[-1], layer, previous, spec.dt, method, backend,
                                         surrogate_slope)  # conv / pooling / delays
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
                x = event_input(x, probe.dtype)
        self.hidden_outputs = []
        for layer in self.layers[:-1]:
            x = layer(x)
            self.hidden_outputs.append(x)
        return self.layers[-1](x)

    def spike_records(self) -> list[SpikeRecord]:
        """Records of every spiking layer from the last forward pass (hidden first)."""
        return [layer.last_record for layer in self.layers
                if isinstance(layer, LIF | DelayedLIF)]
