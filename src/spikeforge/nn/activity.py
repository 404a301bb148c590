"""Warnings about layer activity that stops EventProp training.

EventProp's gradients flow through spikes only: a spiking layer that emits no spike in a
batch gets no gradient for its weights, passes none to the layers before it, and feeds
nothing to the layers after it. Silent layers are the usual result of an initialisation
too weak for the input (e.g. sparse SHD-like spikes), and the loss then stays flat
without any error, so the layer forward reports the first silent batch of each layer
and the trainer reports a layer that is silent on the validation set.

A layer is named by :func:`layer_label`: ``"LIF(700 -> 256)"`` by default, or the label a
container gave it with :func:`label_layer` (the trainer labels each layer of its network
with its position, e.g. ``"layers.1 (hidden layer 2 of 3, LIF(128 -> 128))"``), so two
equal-sized layers of one network warn separately.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable
from typing import Any

_WARNED: set[str] = set()
_LABELS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def default_label(module: Any) -> str:
    """``"<class>(<in_features> -> <out_features>)"``, e.g. ``"LIF(700 -> 256)"``."""
    return f"{type(module).__name__}({module.in_features} -> {module.out_features})"


def label_layer(module: Any, label: str) -> None:
    """Name ``module`` ``label`` in its activity warnings (kept while the module lives)."""
    _LABELS[module] = label


def layer_label(module: Any) -> str:
    """The name activity warnings use for ``module``: its :func:`label_layer` label, else
    :func:`default_label`."""
    label = _LABELS.get(module)
    return label if label is not None else default_label(module)


def warn_if_silent(layer_name: str, n_spikes: int, where: str = "in this batch") -> None:
    """Warn (a ``UserWarning``, once per ``layer_name`` per process) if ``n_spikes`` is 0.

    Args:
        layer_name: how the user can find the layer, e.g. ``"LIF(700 -> 256)"`` or
            ``"layers.0 (hidden layer 1 of 2, LIF(64 -> 128))"``.
        n_spikes: number of spikes the layer emitted (all samples of ``where``).
        where: what was counted, e.g. ``"in this batch"`` or ``"on the validation set
            after epoch 3"``.
    """
    if n_spikes > 0 or layer_name in _WARNED:
        return
    _WARNED.add(layer_name)
    warnings.warn(
        f"spikeforge layer {layer_name} emitted no spike {where}, so no gradient can "
        f"flow through it: EventProp passes gradients through spikes only (its weights and "
        f"every layer before it get none). Make it fire: call "
        f"spikeforge.nn.init.calibrate_(model, batch) before training (spikeforge train: "
        f"--set train.calibrate=all), or build the layer with a larger weight_mean.",
        UserWarning,
        stacklevel=3,
    )


def reset_silent_warnings(names: Iterable[str] | None = None) -> None:
    """Forget which layers were reported, so each warns again (e.g. for a new model);
    ``names``: only these layer names (None: all)."""
    if names is None:
        _WARNED.clear()
    else:
        _WARNED.difference_update(names)
