"""Neuron parameters of a network description.

The parameter dataclasses and their validation live with their neuron models in
:mod:`spikeforge.neurons` (one file per model); they are re-exported here because a
:class:`~spikeforge.model.LayerSpec` holds them. This module adds the layer-level check
of per-neuron time-constant spreads.
"""

from __future__ import annotations

import math

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons import ALIFParams, LIFParams

__all__ = ["ALIFParams", "LIFParams", "check_tau_spread"]


def check_tau_spread(params: LIFParams, spread: float, dt: float, where: str) -> None:
    """Raise :class:`SpikeforgeError` unless per-neuron taus drawn from
    U[tau (1 - spread), tau (1 + spread)] all stay above dt (spread in [0, 1))."""
    if not (isinstance(spread, int | float) and math.isfinite(spread) and 0 <= spread < 1):
        raise SpikeforgeError(
            f"{where}: tau_spread must be in [0, 1) (relative half-width of the uniform "
            f"tau distribution), got {spread!r}"
        )
    for name in ("tau_mem", "tau_syn"):
        if not hasattr(params, name):
            continue
        low = getattr(params, name) * (1 - spread)
        if spread > 0 and low <= dt:
            raise SpikeforgeError(
                f"{where}: with tau_spread={spread} the smallest {name} would be {low:g} ms, "
                f"not above dt={dt} ms; reduce tau_spread or dt"
            )
