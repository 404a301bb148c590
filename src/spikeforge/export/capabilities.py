"""What each export target can express; a clear error naming the layer otherwise.

Convolutional layers (and the average pooling folded into the next layer) are exported
to NIR as ``Conv2d`` and ``AvgPool2d`` nodes (:mod:`spikeforge.export.nir_io`), and to
Brian2 and NEST as their equivalent dense weight matrices (``layer.weight`` is that
matrix): explicit synapses. ALIF is written to NIR as a CubaLIF with spikeforge's
adaptation in its metadata (:data:`spikeforge.export.nir_io.NIR_EXTENSIONS`).

Per-synapse delays (whole-step or interpolated) are exact in Brian2, NEST and NIR: a synapse
with delay (q + f) dt becomes two synapses, weight (1 - f) w with delay q dt and f w with
delay (q + 1) dt, which is spikeforge's interpolation rule (in NIR: one Linear + Delay
branch per delay step).
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
    extension = target == "nir" and model.name in _nir_extensions()
    if not model.supports(target) and not extension:
        features.append(f"{model.title} neurons")
    if getattr(layer, "tau_spread", 0.0) and target != "nir":  # NIR: per-neuron vectors
        features.append("per-neuron time constants (tau_spread > 0)")
    return features


def _nir_extensions() -> tuple[str, ...]:
    from spikeforge.export.nir_io import NIR_EXTENSIONS

    return NIR_EXTENSIONS


def _nir_models() -> list[str]:
    """Names of the neuron models the NIR exporter writes."""
    from spikeforge.neurons import MODELS

    return [m.name for m in MODELS.values()
            if m.supports("nir") or m.name in _nir_extensions()]


def check_expressible(model: LoadedModel, target: str) -> None:
    """Raise :class:`SpikeforgeError` naming the first layer ``target`` cannot express."""
    for index, layer in enumerate(model.network.spec.layers):
        features = _layer_features(layer, target)
        if features:
            fix = ("use a neuron model with a NIR mapping (" + ", ".join(_nir_models()) + ")"
                   if target == "nir" else
                   "export a network of dense LIF layers with an LI or LIF output")
            raise SpikeforgeError(
                f"layer {index} uses {features[0]}, which the {target} exporter cannot "
                f"express; {fix}"
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
