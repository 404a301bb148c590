"""e-prop training of a :class:`~spikeforge.nn.SpikingNetwork` (Bellec et al. 2020).

:class:`EpropLearner` computes a batch's weight gradients forward in time on the
compiled CPU driver (:func:`spikeforge.engine.eprop_api.eprop_gradients`) and writes
them into the parameters' ``.grad``, so any torch optimiser applies them (once per
batch). The objective is the per-step cross-entropy of the LI readout voltages (mean
over samples and steps) plus the spike-count regulariser of the training settings;
predictions use the readout summary of the settings' loss (``sum``, ``sum_exp``,
``max``). Memory is O(synapses), independent of the number of time steps.

The network must be one spiking hidden layer (LIF or ALIF, dense input, optional
recurrence) and an LI readout; anything else is refused with a sentence naming the layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils import parametrize

from spikeforge.engine.eprop_api import eprop_gradients
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.nn import SpikingNetwork
from spikeforge.nn.functional import numpy_dtype
from spikeforge.nn.layers import SpikingLayer
from spikeforge.nn.time_constants import neuron_arrays

FEEDBACK = ("symmetric", "random")


@dataclass(frozen=True)
class EpropSettings:
    """feedback: ``symmetric`` (B = W_out) or ``random`` (fixed, seeded by ``seed``);
    reg_strength, reg_target_hz: spike-count regulariser (Hz); summary: the readout
    summary that makes predictions (``sum``, ``sum_exp``, ``max``)."""

    feedback: str = "symmetric"
    reg_strength: float = 0.0
    reg_target_hz: float = 10.0
    summary: str = "sum"
    seed: int = 0


def check_network(network: SpikingNetwork) -> tuple[SpikingLayer, SpikingLayer]:
    """The (hidden, readout) layers e-prop trains, or a :class:`SpikeforgeError` naming
    the first layer it cannot handle."""
    layers, specs = list(network.layers), network.spec.layers
    for index, (layer, spec) in enumerate(zip(layers, specs, strict=True)):
        name = f"layer {index} ({type(layer).__name__}, {spec.size} neurons)"
        if spec.delays is not None or spec.conv is not None or not isinstance(
                layer, SpikingLayer) or parametrize.is_parametrized(layer):
            kind = "synaptic delays" if spec.delays is not None else "convolution/pooling"
            raise SpikeforgeError(f"e-prop cannot train {name}: it has {kind}; e-prop "
                                  f"handles dense LIF/ALIF layers only (use eventprop or bptt)")
        if index == 0 and not (spec.neuron.spiking and layer.model.supports("eprop")):
            raise SpikeforgeError(f"e-prop cannot train {name}: the hidden layer must be "
                                  f"spiking LIF or ALIF")
        if layer.train_tau:
            raise SpikeforgeError(f"e-prop cannot train the time constants of {name}; set "
                                  f"model.train_tau=false")
    if len(layers) != 2:
        raise SpikeforgeError(
            f"e-prop trains one hidden layer and a readout; layer 1 ({type(layers[1]).__name__}"
            f", {specs[1].size} neurons) is a second hidden layer; set model.hidden to one size")
    hidden, readout = layers
    if readout.params.spiking or readout.model.name != "lif":
        raise SpikeforgeError(f"e-prop cannot train layer 1 ({type(readout).__name__}): the "
                              f"output must be an LI readout (use a readout loss)")
    return hidden, readout


class EpropLearner:
    """Writes e-prop gradients into ``network``'s parameters (see the module docstring)."""

    def __init__(self, network: SpikingNetwork, settings: EpropSettings) -> None:
        if settings.feedback not in FEEDBACK:
            raise SpikeforgeError(f"unknown e-prop feedback {settings.feedback!r}; choose "
                                  f"one of {', '.join(FEEDBACK)}")
        self.hidden, self.readout = check_network(network)
        if self.hidden.weight.device.type != "cpu":
            raise SpikeforgeError("e-prop runs on the CPU driver; set train.device=cpu")
        self.network, self.settings = network, settings
        self.feedback: np.ndarray | None = None
        if settings.feedback == "random":
            w_out = self.readout.weight.detach()
            gen = torch.Generator().manual_seed(int(settings.seed))
            draw = torch.randn(tuple(w_out.T.shape), generator=gen, dtype=torch.float64)
            self.feedback = (draw * float(w_out.std())).numpy()   # [N, C], fixed

    def step(self, events: Events | torch.Tensor, labels: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Set ``.grad`` of the network's weights for one batch; returns the batch's
        mean per-step cross-entropy (a 0-d tensor) and the predicted classes [B]."""
        if not isinstance(events, Events):
            events = Events.from_dense(events.detach().cpu())
        hidden, readout, cfg = self.hidden, self.readout, self.settings
        dtype = numpy_dtype(hidden.weight.dtype)
        dt = float(self.network.spec.dt)
        w_rec = hidden.recurrent_weight
        grads = eprop_gradients(
            neuron_arrays(hidden, hidden.params, hidden.out_features, dt, dtype),
            neuron_arrays(readout, readout.params, readout.out_features, dt, dtype),
            events, hidden.weight.detach().numpy().T,
            None if w_rec is None else w_rec.detach().numpy().T,
            readout.weight.detach().numpy().T, labels.numpy(),
            feedback=self.feedback, surrogate=hidden.surrogate, slope=hidden.surrogate_slope,
            reg_strength=cfg.reg_strength,
            reg_target=cfg.reg_target_hz * events.n_steps * dt / 1000.0,
            summary=cfg.summary,
        )  # fmt: skip
        like = hidden.weight
        hidden.weight.grad = torch.from_numpy(grads.grad_w_in.T.copy()).to(like)
        if w_rec is not None:
            w_rec.grad = torch.from_numpy(grads.grad_w_rec.T.copy()).to(like)
        readout.weight.grad = torch.from_numpy(grads.grad_w_out.T.copy()).to(like)
        loss = torch.tensor(float(grads.loss.sum()), dtype=like.dtype)
        if not math.isfinite(float(loss)):
            raise SpikeforgeError("e-prop loss is not finite; lower train.lr")
        predictions = torch.from_numpy(grads.summary.argmax(axis=1))
        self.last_counts = grads.counts
        return loss, predictions
