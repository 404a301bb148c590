"""What each export target can express; a clear error naming the layer otherwise.

Convolutional layers (and the average pooling folded into the next layer) are exported
as their equivalent dense weight matrices (``layer.weight`` is that matrix): a NIR
``Linear`` node, explicit synapses in Brian2 and NEST. Exact, but without the kernel
structure (a NIR ``Conv2d`` node would keep it; not written yet).

Per-synapse delays (whole-step or interpolated) are exact in Brian2 and NEST: a synapse
with delay (q + f) dt becomes two synapses, weight (1 - f) w with delay q dt and f w with
delay (q + 1) dt, which is spikeforge's interpolation rule.
"""

from __future__ import annotations

from spikeforge.errors import SpikeforgeError
from spikeforge.export.network_io import LoadedModel
from spikeforge.neurons import model_of


def _layer_features(layer, target: str) -> list[str]:
    """Features of a :class:`LayerSpec` beyond dense LIF/LI with scalar parameters that
    ``target`` cannot express."""
    features = []
    model = model_of(layer.neuron)
    if not model.supports(target):
        features.append(f"{model.title} neurons")
    if getattr(layer, "delays", None) is not None and target == "nir":
        features.append("per-synapse delays (NIR Delay nodes delay whole channels)")
    if getattr(layer, "tau_spread", 0.0):
        features.append("per-neuron time constants (tau_spread > 0)")
    return features


def check_expressible(model: LoadedModel, target: str) -> None:
    """Raise :class:`SpikeforgeError` naming the first layer ``target`` cannot express."""
    for index, layer in enumerate(model.network.spec.layers):
        features = _layer_features(layer, target)
        if features:
            raise SpikeforgeError(
                f"layer {index} uses {features[0]}, which the {target} exporter cannot "
                f"express; export a network of dense LIF layers with an LI or LIF output"
            )
        p = layer.neuron
        if target == "brian2" and abs(p.tau_mem - p.tau_syn) < 1e-9 * p.tau_mem:
            raise SpikeforgeError(
                f"layer {index}: tau_mem == tau_syn ({p.tau_mem} ms) cannot be expressed in "
                f"brian2 (its exact integrator divides by tau_mem - tau_syn); make them differ"
            )
        if target == "nest" and layer.recurrent:
            raise SpikeforgeError(
                f"layer {index}: recurrent connections cannot be expressed in nest with "
                f"spikeforge's timing (NEST's minimum delay is one step, spikeforge's "
                f"recurrent delay is zero); export a feed-forward network"
            )
