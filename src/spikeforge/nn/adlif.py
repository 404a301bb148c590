"""adLIF layer: LIF with an adaptation current w coupled to the membrane
(:mod:`spikeforge.neurons.adlif`; Bittar & Garner 2022, Baronig et al. 2025). Gradients
for the weights by EventProp (the engine's generic drivers with the adLIF adjoint) or
surrogate BPTT; with ``learn_adaptation=True`` and ``method="bptt"`` every neuron also
learns its own a, b and tau_adapt within bounds.

Shapes as for :class:`spikeforge.nn.LIF`: input ``[B, T, in]`` (or an event token),
output spikes ``[B, T, out]`` (or a token when ``dense_output=False`` with EventProp).
"""

from __future__ import annotations

import torch
from torch import nn

from spikeforge.neurons import AdLIFParams
from spikeforge.nn.layers import LIF

LEARNED = ("a", "b", "tau_adapt")
"""The per-neuron adaptation parameters of a layer with ``learn_adaptation``."""


class AdLIF(LIF):
    """adLIF layer: tau_mem V' = -V + I - w, tau_adapt w' = a V - w, w += b per spike.

    Args: those of :class:`spikeforge.nn.LIF`, plus
        tau_adapt: adaptation time constant tau_w in ms (> dt);
        a: sub-threshold coupling of w to V (> -1);
        b: jump of w per spike (>= 0, threshold units);
        learn_adaptation: per-neuron a, b, tau_adapt, each stored as the logit of its
            position in its range (``params.a_range`` ...: value = low + (high - low)
            sigmoid(raw), so it never leaves the range) and trained with
            ``method="bptt"``; with EventProp they are fixed buffers (the engine has no
            gradient for them). Initialised to a, b, tau_adapt.
        adaptation_init: ``"uniform"`` gives every neuron its own a, b, tau_adapt drawn
            uniformly in the ranges (torch's RNG, at construction): fixed buffers unless
            learned by BPTT with ``learn_adaptation``.
        params: an :class:`~spikeforge.neurons.AdLIFParams` replacing the scalar
            settings (and giving the ranges).

    The learned values are ``layer.adaptation()`` (float64 [out] tensors).
    """

    def __init__(self, in_features: int, out_features: int, recurrent: bool = False,
                 tau_mem: float = 20.0, tau_syn: float = 5.0, threshold: float = 1.0,
                 dt: float = 1.0, *, tau_adapt: float = 100.0, a: float = 0.5, b: float = 0.5,
                 learn_adaptation: bool = False, adaptation_init: str = "fixed",
                 params: AdLIFParams | None = None, **options) -> None:
        if params is None:
            params = AdLIFParams(tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold,
                                 tau_adapt=tau_adapt, a=a, b=b,
                                 learn_adaptation=learn_adaptation,
                                 adaptation_init=adaptation_init)
        super().__init__(in_features, out_features, recurrent, dt=dt, params=params, **options)
        if not params.per_neuron:
            return
        trainable = self.method == "bptt" and params.learn_adaptation
        dtype = torch.get_default_dtype()
        for name in LEARNED:
            low, high = getattr(params, f"{name}_range")
            if params.adaptation_init == "uniform":
                share = torch.rand(out_features, dtype=torch.float64).clamp(1e-3, 1 - 1e-3)
            else:
                share = torch.full((out_features,), (getattr(params, name) - low) / (high - low),
                                   dtype=torch.float64)
            raw = torch.log(share / (1.0 - share)).to(dtype)
            if trainable:
                self.register_parameter(f"raw_{name}", nn.Parameter(raw))
            else:
                self.register_buffer(f"raw_{name}", raw)

    def extra_neuron_vectors(self) -> dict[str, torch.Tensor]:
        """Per-neuron a, b, tau_adapt (float64 [out], differentiable) for the model's
        factor table; empty without ``learn_adaptation`` or ``adaptation_init="uniform"``
        (the scalars of ``params``)."""
        if not self.params.per_neuron:
            return {}
        values = {}
        for name in LEARNED:
            low, high = getattr(self.params, f"{name}_range")
            raw = getattr(self, f"raw_{name}").double()
            values[name] = low + (high - low) * torch.sigmoid(raw)
        return values

    def adaptation(self) -> dict[str, torch.Tensor]:
        """The layer's a, b and tau_adapt (ms) per neuron, float64 [out] (detached)."""
        learned = self.extra_neuron_vectors()
        return {name: learned[name].detach() if name in learned else
                torch.full((self.out_features,), float(getattr(self.params, name)),
                           dtype=torch.float64)
                for name in LEARNED}
