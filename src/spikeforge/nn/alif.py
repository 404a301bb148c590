"""Adaptive LIF (ALIF) layer: LIF whose threshold rises by beta after every spike and
relaxes with tau_adapt (:mod:`spikeforge.neurons.alif`). Gradients by EventProp (the
engine's generic drivers with the ALIF adjoint) or surrogate BPTT.

Shapes as for :class:`spikeforge.nn.LIF`: input ``[B, T, in]`` (or an event token),
output spikes ``[B, T, out]`` (or a token when ``dense_output=False`` with EventProp).
"""

from __future__ import annotations

from spikeforge.neurons import ALIFParams
from spikeforge.nn.layers import LIF


class ALIF(LIF):
    """Adaptive LIF layer (threshold theta + beta A, A += 1 per spike, decay tau_adapt).

    Args: those of :class:`spikeforge.nn.LIF`, plus
        tau_adapt: adaptation time constant in ms (> dt);
        beta: adaptation strength (>= 0);
        params: an :class:`~spikeforge.neurons.ALIFParams` replacing the scalar settings.
    """

    def __init__(self, in_features: int, out_features: int, recurrent: bool = False,
                 tau_mem: float = 20.0, tau_syn: float = 5.0, threshold: float = 1.0,
                 dt: float = 1.0, *, tau_adapt: float = 200.0, beta: float = 0.2,
                 params: ALIFParams | None = None, **options) -> None:
        if params is None:
            params = ALIFParams(tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold,
                                tau_adapt=tau_adapt, beta=beta)
        super().__init__(in_features, out_features, recurrent, dt=dt, params=params, **options)
