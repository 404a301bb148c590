"""Warnings about layer activity that stops EventProp training.

EventProp's gradients flow through spikes only: a spiking layer that emits no spike in a
batch gets no gradient for its weights, passes none to the layers before it, and feeds
nothing to the layers after it. Silent layers are the usual result of an initialisation
too weak for the input (e.g. sparse SHD-like spikes), and the loss then stays flat
without any error, so the layer forward reports the first silent batch of each layer.
"""

from __future__ import annotations

import warnings

_WARNED: set[str] = set()


def warn_if_silent(layer_name: str, n_spikes: int) -> None:
    """Warn (a ``UserWarning``, once per ``layer_name`` per process) if ``n_spikes`` is 0.

    Args:
        layer_name: how the user can find the layer, e.g. ``"LIF(700 -> 256)"`` or
            ``"layers.0"``.
        n_spikes: number of spikes the layer emitted in the batch (all samples).
    """
    if n_spikes > 0 or layer_name in _WARNED:
        return
    _WARNED.add(layer_name)
    warnings.warn(
        f"spikeforge layer {layer_name} emitted no spike in this batch, so no gradient can "
        f"flow through it: EventProp passes gradients through spikes only (its weights and "
        f"every layer before it get none). Make it fire: call "
        f"spikeforge.nn.init.calibrate_(model, batch) before training, or build the layer "
        f"with a larger weight_mean.",
        UserWarning,
        stacklevel=3,
    )


def reset_silent_warnings() -> None:
    """Forget which layers were reported, so each warns again (e.g. for a new model)."""
    _WARNED.clear()
