"""Declarative description of a layered SNN (what it is, not how it runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from spikeforge.errors import SpikeforgeError
from spikeforge.model.connectivity import ConvSpec, DelaySpec, check_structure
from spikeforge.model.neurons import LIFParams, check_tau_spread


@dataclass(frozen=True)
class LayerSpec:
    """One population with its incoming dense connections.

    Attributes:
        size: number of neurons.
        neuron: neuron parameters: :class:`LIFParams` (LIF or LI readout) or
            :class:`ALIFParams` (adaptive LIF).
        recurrent: whether the population has all-to-all recurrent connections.
        weight_mean, weight_std: initial feed-forward weights ~ N(mean, std / sqrt(fan_in)).
        recurrent_std: initial recurrent weights ~ N(0, recurrent_std / sqrt(size)).
        tau_spread: per-neuron tau_mem, tau_syn ~ U[tau (1 - spread), tau (1 + spread)].
        train_tau: whether the per-neuron time constants are trained (BPTT only).
        conv: makes the incoming connections a 2-D convolution (size = conv output units).
        delays: learnable per-synapse delays of the incoming (and recurrent) synapses.
    """

    size: int
    neuron: LIFParams = field(default_factory=LIFParams)
    recurrent: bool = False
    weight_mean: float = 0.0
    weight_std: float = 1.0
    recurrent_std: float = 0.5
    tau_spread: float = 0.0
    train_tau: bool = False
    conv: ConvSpec | None = None
    delays: DelaySpec | None = None


@dataclass(frozen=True)
class NetworkSpec:
    """A feed-forward stack of populations driven by ``n_inputs`` spike sources.

    Attributes:
        n_inputs: number of input channels (spike sources).
        layers: hidden LIF layers followed by the output layer (LI readout or LIF).
        dt: simulation time step in ms.
    """

    n_inputs: int
    layers: tuple[LayerSpec, ...]
    dt: float = 1.0

    def validate(self) -> None:
        """Raise :class:`SpikeforgeError` naming the first invalid setting."""
        if not (self.dt > 0):
            raise SpikeforgeError(f"dt must be a positive number of ms, got {self.dt!r}")
        if self.n_inputs < 1:
            raise SpikeforgeError(f"the network needs at least one input, got {self.n_inputs}")
        if not self.layers:
            raise SpikeforgeError("the network needs at least one layer (the readout)")
        for index, layer in enumerate(self.layers):
            where = f"layer {index}"
            if layer.size < 1:
                raise SpikeforgeError(f"{where}: size must be >= 1, got {layer.size}")
            layer.neuron.validate(self.dt, where)
            check_tau_spread(layer.neuron, layer.tau_spread, self.dt, where)
            if not layer.neuron.spiking and index != len(self.layers) - 1:
                raise SpikeforgeError(
                    f"{where}: a non-spiking (LI) layer can only be the last (readout) layer"
                )
            if layer.recurrent and not layer.neuron.spiking:
                raise SpikeforgeError(f"{where}: an LI readout cannot be recurrent")
        check_structure(self.n_inputs, self.layers, self.dt)

    def check_window(self, duration_ms: float) -> None:
        """Raise :class:`SpikeforgeError` if a delay does not fit in ``duration_ms``."""
        for index, layer in enumerate(self.layers):
            if layer.delays is not None:
                layer.delays.check_window(f"layer {index}", duration_ms)
