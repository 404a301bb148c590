"""Build the structured variants of a network layer: delayed, convolutional, pooled input.

:class:`~spikeforge.nn.SpikingNetwork` builds each layer as a dense LIF / LI and hands it
to :func:`structure_layer`, which returns it unchanged, with a conv / pooling weight
parametrization (:mod:`spikeforge.nn.conv`), or replaced by a delayed layer
(:mod:`spikeforge.nn.delays`), as the :class:`~spikeforge.model.LayerSpec` asks.
"""

from __future__ import annotations

from torch import nn

from spikeforge.errors import SpikeforgeError
from spikeforge.model.network import LayerSpec
from spikeforge.neurons import model_of
from spikeforge.nn.conv import make_conv, make_pooled
from spikeforge.nn.delays import DelayedLI, DelayedLIF


def _delayed(layer: nn.Module, spec: LayerSpec, dt: float, method: str, backend: str,
             slope: float) -> nn.Module:  # fmt: skip
    d, p = spec.delays, spec.neuron
    common = dict(dt=dt, max_delay=d.max_ms, delay_init=d.init, learn_delays=d.learn,
                  delay_mode=d.mode, method=method, backend=backend,
                  weight_mean=spec.weight_mean, weight_std=spec.weight_std)
    if p.spiking:
        return DelayedLIF(layer.in_features, spec.size, recurrent=spec.recurrent, params=p,
                          dense_output=getattr(layer, "dense_output", True),
                          recurrent_std=spec.recurrent_std, surrogate_slope=slope,
                          **common)  # fmt: skip
    return DelayedLI(layer.in_features, spec.size, params=p, **common)


def structure_layer(layer: nn.Module, spec: LayerSpec, previous: LayerSpec | None, dt: float,
                    method: str = "eventprop", backend: str = "auto",
                    surrogate_slope: float = 10.0) -> nn.Module:  # fmt: skip
    """``layer`` (a dense LIF / LI built for ``spec``) adapted to its conv / pooling /
    delay settings; ``previous`` is the spec of the layer feeding it (None: the input)."""
    conv_before = previous.conv if previous is not None else None
    pooled = conv_before is not None and conv_before.pool > 1
    if spec.delays is not None:
        if spec.conv is not None or pooled or not model_of(spec.neuron).supports("delays"):
            raise SpikeforgeError(
                "delays work on dense LIF / LI layers only (not conv, pooled input or ALIF); "
                "remove model.delays or the conv / neuron setting")
        if spec.tau_spread or spec.train_tau:
            raise SpikeforgeError(
                "delayed layers have one tau_mem / tau_syn per layer: per-neuron or trainable "
                "time constants (model.tau_spread, model.train_tau) cannot be combined with "
                "model.delays; remove one of them")
        return _delayed(layer, spec, dt, method, backend, surrogate_slope)
    pooled_from = conv_before if pooled else None
    if spec.conv is not None:
        return make_conv(layer, spec.conv, pooled_from, spec.weight_mean, spec.weight_std)
    if pooled_from is not None:
        return make_pooled(layer, pooled_from, spec.weight_mean, spec.weight_std)
    return layer
