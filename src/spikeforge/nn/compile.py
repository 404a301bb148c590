"""The one compile step: a :class:`~spikeforge.model.NetworkSpec` becomes torch modules.

``build_network(spec, method, device)`` is the only place that turns the declarative
description (``model/``) into runnable layers (``nn/``): it validates the spec once,
picks each layer's module from its neuron model and structure (dense, conv, pooled,
delayed), and moves the result to the device. Everything above (``train/``,
``experiments/``, ``export/``, ``energy/``) builds networks through it.
"""

from __future__ import annotations

import torch

from spikeforge.model.network import NetworkSpec
from spikeforge.nn.bptt import DEFAULT_SLOPE, DEFAULT_SURROGATE
from spikeforge.nn.network import SpikingNetwork


def build_network(spec: NetworkSpec, method: str = "eventprop",
                  device: str | torch.device = "cpu", *,
                  surrogate: str = DEFAULT_SURROGATE, surrogate_slope: float = DEFAULT_SLOPE,
                  backend: str = "auto") -> SpikingNetwork:
    """Validated, initialised :class:`SpikingNetwork` for ``spec`` on ``device``.

    Args:
        spec: the network description (its ``dt`` is the network's one time step, ms).
        method: ``"eventprop"`` (exact gradients) or ``"bptt"`` (surrogate gradients).
        device: torch device for the parameters (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        surrogate, surrogate_slope: the BPTT surrogate derivative.
        backend: engine backend (``"auto"``: compiled event kernels on CPU, the torch
            path on CUDA).
    """
    network = SpikingNetwork(spec, backend=backend, method=method, surrogate=surrogate,
                             surrogate_slope=surrogate_slope)
    return network.to(device)
