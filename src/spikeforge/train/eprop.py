"""e-prop training of a :class:`~spikeforge.nn.SpikingNetwork` (Bellec et al. 2020).

:class:`EpropLearner` computes a batch's weight gradients forward in time, on the
compiled CPU driver (:func:`spikeforge.engine.eprop_api.eprop_gradients`) for a network
on the CPU, or for a network on a GPU with the torch loop of
:func:`spikeforge.train.eprop_reference.eprop_reference` on the device (the same neuron
model functions as batched torch operations; ``backend="torch"`` selects it on the CPU
too, which is how it is tested against the compiled driver), and writes them into the
parameters' ``.grad``, so any torch optimiser applies them: once per
batch (``update="batch"``), or online (``update="step"``): every ``update_every`` time
steps the gradients of those steps are written and the caller's update (an optimiser
step) is applied before the batch runs on, all samples in step, as in the online
learning of Bellec et al. 2020; the last window's gradients are left in ``.grad`` for the
caller's usual optimiser step. The objective is the per-step cross-entropy of the LI
readout voltages (mean over samples and steps) plus the spike-count regulariser of the
training settings; predictions use the readout summary of the settings' loss (``sum``,
``sum_exp``, ``max``). Memory is O(synapses) (O(synapses x batch) with ``update="step"``),
independent of the number of time steps.

The network must be one spiking hidden layer (LIF or ALIF, dense input, optional
recurrence) and an LI readout; anything else is refused with a sentence naming the layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
UPDATES = ("batch", "step")
BACKENDS = ("auto", "compiled", "torch")


@dataclass(frozen=True)
class EpropSettings:
    """feedback: ``symmetric`` (B = W_out) or ``random`` (fixed, seeded by ``seed``);
    reg_strength, reg_target_hz: spike-count regulariser (Hz); summary: the readout
    summary that makes predictions (``sum``, ``sum_exp``, ``max``); update: ``batch``
    (one update per batch) or ``step`` (an update every ``update_every`` time steps
    within the batch)."""

    feedback: str = "symmetric"
    reg_strength: float = 0.0
    reg_target_hz: float = 10.0
    summary: str = "sum"
    seed: int = 0
    update: str = "batch"
    update_every: int = 1
    backend: str = "auto"
    """``auto`` (compiled driver on the CPU, torch loop on a GPU), ``compiled`` or
    ``torch``."""


def check_network(network: SpikingNetwork) -> tuple[SpikingLayer, SpikingLayer]:
    """The (hidden, readout) layers e-prop trains, or a :class:`SpikeforgeError` naming
    the first layer it cannot handle."""
    layers, specs = list(network.layers), network.spec.layers
    for index, (layer, spec) in enumerate(zip(layers, specs, strict=True)):
        kind_name = type(layer).__name__
        if spec.conv is not None:  # a parametrised (weight-shared) layer: name the conv
            kind_name = (f"conv {spec.conv.channels} maps {spec.conv.kernel}x"
                         f"{spec.conv.kernel}, pool {spec.conv.pool}")
        name = f"layer {index} ({kind_name}, {spec.size} neurons)"
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
        if settings.update not in UPDATES:
            raise SpikeforgeError(f"unknown e-prop update {settings.update!r}; choose "
                                  f"one of {', '.join(UPDATES)}")
        if settings.update_every < 1:
            raise SpikeforgeError(f"e-prop update_every must be >= 1 time step, got "
                                  f"{settings.update_every}")
        if settings.backend not in BACKENDS:
            raise SpikeforgeError(f"unknown e-prop backend {settings.backend!r}; choose "
                                  f"one of {', '.join(BACKENDS)}")
        self.hidden, self.readout = check_network(network)
        on_cpu = self.hidden.weight.device.type == "cpu"
        if settings.backend == "compiled" and not on_cpu:
            raise SpikeforgeError("the compiled e-prop driver runs on the CPU; set "
                                  "train.device=cpu or use the torch backend")
        self.torch_loop = settings.backend == "torch" or (settings.backend == "auto"
                                                          and not on_cpu)
        self.network, self.settings = network, settings
        self.feedback: np.ndarray | None = None
        if settings.feedback == "random":
            w_out = self.readout.weight.detach()
            gen = torch.Generator().manual_seed(int(settings.seed))
            draw = torch.randn(tuple(w_out.T.shape), generator=gen, dtype=torch.float64)
            self.feedback = (draw * float(w_out.std())).numpy()   # [N, C], fixed

    def _write_grads(self, grads) -> None:
        """Write gradients ``[pre, post]`` (NumPy arrays or tensors) into ``.grad``."""
        hidden, readout = self.hidden, self.readout
        like = hidden.weight

        def grad(value) -> torch.Tensor:
            value = value if isinstance(value, torch.Tensor) else torch.from_numpy(value)
            return value.detach().T.contiguous().to(like)

        hidden.weight.grad = grad(grads.grad_w_in)
        if hidden.recurrent_weight is not None:
            hidden.recurrent_weight.grad = grad(grads.grad_w_rec)
        readout.weight.grad = grad(grads.grad_w_out)

    def _weights(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The current weights as NumPy ``(w_in [in, N], w_rec [N, N] or None,
        w_out [N, C])`` (pre, post)."""
        w_rec = self.hidden.recurrent_weight
        return (self.hidden.weight.detach().numpy().T,
                None if w_rec is None else w_rec.detach().numpy().T,
                self.readout.weight.detach().numpy().T)

    def step(self, events: Events | torch.Tensor, labels: torch.Tensor,
             apply_update: Callable[[], None] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Set ``.grad`` of the network's weights for one batch; returns the batch's
        mean per-step cross-entropy (a 0-d tensor) and the predicted classes [B].

        With ``update="step"``, ``apply_update`` (e.g. clip, ``optimizer.step()``) is
        called after the gradients of each window of ``update_every`` steps but the last
        have been written into ``.grad``; the next window runs with the updated weights.
        """
        online = self.settings.update == "step"
        if online and apply_update is None:
            raise SpikeforgeError("e-prop update=step needs an update to apply between "
                                  "windows (apply_update)")
        if self.torch_loop:
            return self._step_torch(events, labels, apply_update, online)
        if not isinstance(events, Events):
            events = Events.from_dense(events.detach().cpu())
        hidden, readout, cfg = self.hidden, self.readout, self.settings
        dtype = numpy_dtype(hidden.weight.dtype)
        dt = float(self.network.spec.dt)
        apply = self._applier(apply_update, self._weights)

        grads = eprop_gradients(
            neuron_arrays(hidden, hidden.params, hidden.out_features, dt, dtype),
            neuron_arrays(readout, readout.params, readout.out_features, dt, dtype),
            events, *self._weights(), labels.numpy(),
            feedback=self.feedback, surrogate=hidden.surrogate, slope=hidden.surrogate_slope,
            reg_strength=cfg.reg_strength,
            reg_target=cfg.reg_target_hz * events.n_steps * dt / 1000.0,
            summary=cfg.summary, update_every=cfg.update_every if online else None,
            apply=apply if online else None,
        )  # fmt: skip
        self._write_grads(grads)
        loss = torch.tensor(float(grads.loss.sum()), dtype=hidden.weight.dtype)
        if not math.isfinite(float(loss)):
            raise SpikeforgeError("e-prop loss is not finite; lower train.lr")
        predictions = torch.from_numpy(grads.summary.argmax(axis=1))
        self.last_counts = grads.counts
        return loss, predictions

    def _applier(self, apply_update: Callable[[], None] | None,
                 weights: Callable[[], tuple]) -> Callable:
        """The per-window callback of ``update="step"``: write the window's gradients,
        apply the caller's update, return the new weights (``weights()``)."""

        def apply(window):
            self._write_grads(window)
            apply_update()
            return weights()

        return apply

    def _torch_weights(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The current weights as detached tensors ``(w_in [in, N], w_rec [N, N] or None,
        w_out [N, C])`` (pre, post) on the network's device."""
        w_rec = self.hidden.recurrent_weight
        return (self.hidden.weight.detach().T, None if w_rec is None else w_rec.detach().T,
                self.readout.weight.detach().T)

    def _step_torch(self, events: Events | torch.Tensor, labels: torch.Tensor,
                    apply_update: Callable[[], None] | None, online: bool
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`step` by the torch loop on the network's device."""
        from spikeforge.nn.time_constants import torch_table
        from spikeforge.train.eprop_reference import eprop_reference
        from spikeforge.train.losses import readout_summary

        hidden, readout, cfg = self.hidden, self.readout, self.settings
        like = hidden.weight
        x = (torch.from_numpy(events.to_dense(numpy_dtype(like.dtype)))
             if isinstance(events, Events) else events.detach())
        x = x.to(device=like.device, dtype=like.dtype)
        dt = float(self.network.spec.dt)
        apply = self._applier(apply_update, self._torch_weights)
        feedback = None if self.feedback is None else torch.as_tensor(
            self.feedback, dtype=like.dtype, device=like.device)
        with torch.no_grad():
            result = eprop_reference(
                hidden.model,
                torch_table(hidden, hidden.params, hidden.out_features, dt, like).detach(),
                torch_table(readout, readout.params, readout.out_features, dt,
                            like).detach(),
                x, labels.to(like.device), *self._torch_weights(), feedback=feedback,
                surrogate=hidden.surrogate, slope=hidden.surrogate_slope,
                reg_strength=cfg.reg_strength,
                reg_target=cfg.reg_target_hz * x.shape[1] * dt / 1000.0,
                update_every=cfg.update_every if online else None,
                apply=apply if online else None,
            )  # fmt: skip
        self._write_grads(result)
        loss = result.loss.detach()
        if not math.isfinite(float(loss)):
            raise SpikeforgeError("e-prop loss is not finite; lower train.lr")
        predictions = readout_summary(result.v_out, cfg.summary).argmax(dim=1)
        self.last_counts = result.spikes.sum(dim=1).cpu().numpy()
        return loss, predictions
