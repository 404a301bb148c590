"""NIR (Neuromorphic Intermediate Representation) export.

Parameter convention. NIR is continuous-time with times in **seconds**; its CubaLIF /
CubaLI nodes are::

    tau_syn dI/dt = -I + w_in S          (S: sum of Dirac input spikes)
    tau_mem dv/dt = (v_leak - v) + r I   (CubaLIF: v > v_threshold -> spike, v <- v_reset)

spikeforge's model (ALGORITHMS.md section 1, :mod:`spikeforge.model.neurons`) is the same
system with v_leak = v_reset = 0, r = 1 and a jump ``I += w`` per weighted spike, so we
write ``r = 1`` and ``w_in = tau_syn`` (a Dirac of area w then raises I by exactly w),
taus in seconds (``tau_ms / 1000``) and the weights in ``Linear`` nodes (``[out, in]``).
Each neuron model states its own node (``nir_node`` in :mod:`spikeforge.neurons`): the
general current-based model (``cuba_lif``) is CubaLIF / CubaLI with its v_leak, v_reset
and per-neuron values, ``if`` is IF / I (no leak) or LIF / LI (r = tau), the
delta-synapse LIF is LIF (r = tau); a constant current or drive becomes the bias of an
``Affine`` node in front of the neuron. The importer (:mod:`spikeforge.export.nir_import`)
reads these graphs back exactly.

Layers with structure keep it:

* conv layers are ``Conv2d`` nodes (the kernel, not a dense matrix) and their average
  pooling an ``AvgPool2d`` node (kernel = stride = pool) in front of the next layer
  (followed by ``Flatten`` when that layer is dense); neuron parameters of conv layers
  are shaped like the feature maps ``[C, H, W]``.
* per-synapse delays become one branch per delay step: ``Linear`` with the synapses of
  delay q dt, then a ``Delay`` node of q dt seconds on every channel (q = 0 without the
  Delay), summed at the neuron. Rounded delays use q = round(d / dt); an interpolated delay
  (q + f) dt is its two synapses, (1 - f) w at q dt and f w at (q + 1) dt: what spikeforge
  computes, so the graph is exact in NIR's own semantics too.
* ALIF (adaptive threshold) has no NIR node. It is written as a ``CubaLIF`` (the membrane
  and synapse, exact) whose metadata carries the adaptation, a spikeforge extension
  (``spikeforge.extension`` says so in words): ``spikeforge.neuron`` holds
  ``tau_adapt`` (ms) and ``beta``, meaning tau_adapt dA/dt = -A, A += 1 per spike and a
  spike when v > v_threshold + beta A. spikeforge and its NIR reference simulator read it;
  other consumers see a LIF without adaptation.

Per-neuron time constants (``tau_spread``, trained taus) are written as per-neuron
vectors of the neuron node. Every neuron node's metadata also holds the spikeforge
parameters (``spikeforge.neuron``: model name and values, JSON), the layer's
initialisation, tau spread and delay settings (``spikeforge.layer``) and the trainable
tensors the graph holds only in derived form (delays before rounding and clamping,
log-taus), so a re-import rebuilds the same model class, spec and tensors; the NIR
values stay the truth (an edited file imports what it says).

spikeforge integrates exactly but on a time grid: spikes are detected at multiples of
dt and a spike emitted at step n reaches the next layer's current at the same step.
The grid step and readout rule are stored in the graph metadata
(``spikeforge.dt_ms``, ``spikeforge.readout``); other consumers discretise with their
own step. Graph layout::

    input -> fc0 (Linear) -> lif0 (CubaLIF) [-> rec0 (Linear) -> lif0] -> fc1 -> ...
          -> out (CubaLI, or CubaLIF for a spiking output) -> output
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.export.network_io import LoadedModel
from spikeforge.export.nir_import import from_nir, read_nir  # the importer, re-exported
from spikeforge.neurons import cuba_lif, if_, lif, model_of
from spikeforge.nn import SpikingNetwork

NIR_EXTENSIONS = ("alif", "adlif")
"""Neuron models written as a standard NIR node plus spikeforge metadata (module docstring)."""

_INPUT_BIAS = {"cuba_lif": cuba_lif.nir_input_bias, "if": if_.nir_input_bias}
"""Models with a constant input: the NIR ``Affine`` bias that carries it."""

ALIF_EXTENSION = ("spikeforge ALIF: tau_adapt dA/dt = -A (ms), A += 1 per spike, spike when "
                  "v > v_threshold + beta A; v and I as in this CubaLIF")
ADLIF_EXTENSION = ("spikeforge adLIF: tau_mem dv/dt = -v + I - w and tau_adapt dw/dt = a v - w "
                   "(ms), w += b per spike; I, the threshold and the reset as in this CubaLIF "
                   "(a NIR reader without the extension simulates it without w)")
EXTENSION_TEXT = {"alif": ALIF_EXTENSION, "adlif": ADLIF_EXTENSION}
"""The ``spikeforge.extension`` metadata text of each model in :data:`NIR_EXTENSIONS`."""


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - nir is a core dependency
        raise SpikeforgeError("NIR export needs the nir package: pip install nir") from exc
    return nir


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy().copy()


def _neuron_node(params, size: int, shape: tuple[int, ...], layer_spec, layer, nir):
    """The layer's NIR neuron node (parameters shaped ``shape``) with spikeforge's
    metadata."""
    model = model_of(params)
    if model.name in NIR_EXTENSIONS:
        if getattr(params, "per_neuron", False):
            raise SpikeforgeError(
                "NIR export: an adLIF layer with per-neuron a, b, tau_w "
                "(model.adlif_learn or model.adlif_init=uniform) has no NIR form yet; "
                "export a model trained with one fixed set of adaptation values")
        base = lif.nir_node(lif.LIFParams(params.tau_mem, params.tau_syn, params.threshold,
                                          params.spiking), size, nir)
    else:
        base = model.nir_node(params, size, nir)
    log_taus = {name: getattr(layer, f"log_{name}", None) for name in ("tau_mem", "tau_syn")}
    if log_taus["tau_mem"] is not None:  # per-neuron (tau_spread) or trained time constants
        tau_mem, tau_syn = (_numpy(log_taus[k]).astype(np.float64) for k in log_taus)
        tau_mem, tau_syn = np.exp(tau_mem) / 1e3, np.exp(tau_syn) / 1e3
        base.tau_mem, base.tau_syn, base.w_in = tau_mem, tau_syn, tau_syn.copy()
    values = {}
    for f in fields(base):
        if f.name in ("input_type", "output_type", "metadata"):
            continue
        value = getattr(base, f.name)
        if isinstance(value, np.ndarray) and value.size == size:
            value = value.reshape(shape)
        values[f.name] = value
    delays = layer_spec.delays
    metadata = {
        "spikeforge.neuron": json.dumps({"model": model.name, **asdict(params)}),
        "spikeforge.layer": json.dumps({
            "weight_mean": layer_spec.weight_mean, "weight_std": layer_spec.weight_std,
            "recurrent_std": layer_spec.recurrent_std, "tau_spread": layer_spec.tau_spread,
            "train_tau": layer_spec.train_tau,
            "delays": None if delays is None else asdict(delays)}),
    }  # fmt: skip
    if model.name in EXTENSION_TEXT:
        metadata["spikeforge.extension"] = EXTENSION_TEXT[model.name]
    for name, tensor in log_taus.items():
        if tensor is not None:
            metadata[f"spikeforge.log_{name}"] = _numpy(tensor)
    for key, tensor in (("spikeforge.delay_ms", getattr(layer, "delay", None)),
                        ("spikeforge.recurrent_delay_ms", getattr(layer, "recurrent_delay", None))):
        if tensor is not None:  # the trainable values (the graph has them rounded / clamped)
            metadata[key] = _numpy(tensor)
    return type(base)(**values, metadata=metadata)


def _delay_branches(weight: np.ndarray, delay_ms: np.ndarray, mode: str,
                    dt: float) -> dict[int, np.ndarray]:
    """Synapses [out, in] with delays (ms) as {q: weights arriving q steps later}."""
    steps = delay_ms / dt
    if mode == "round":
        q = np.rint(steps).astype(np.int64)
        frac = np.zeros_like(steps)
    else:
        q = np.floor(steps).astype(np.int64)
        frac = steps - q
    branches: dict[int, np.ndarray] = {0: np.zeros_like(weight)}
    for value in np.unique(q):
        mask = q == value
        branches[int(value)] = branches.get(int(value), 0.0) + weight * (1.0 - frac) * mask
        if np.any(frac[mask] > 0):
            branches[int(value) + 1] = (branches.get(int(value) + 1, 0.0)
                                        + weight * frac * mask)
    return branches


class _Writer:
    """Collects the nodes and edges of one graph."""

    def __init__(self, nir) -> None:
        self.nir = nir
        self.nodes: dict = {}
        self.edges: list[tuple[str, str]] = []

    def add(self, name: str, node, source: str) -> str:
        self.nodes[name] = node
        self.edges.append((source, name))
        return name

    def synapses(self, prefix: str, weight: np.ndarray, delays: tuple | None,
                 source: str, target: str, dt: float, bias: np.ndarray | None = None) -> None:
        """``source`` -> Linear / Affine [-> Delay] -> ``target``, one branch per delay."""
        branches = {0: weight} if delays is None else _delay_branches(weight, *delays, dt)
        for q, w in sorted(branches.items()):
            if q and not np.any(w):
                continue
            name = prefix if q == 0 else f"{prefix}_d{q}"
            node = (self.nir.Affine(weight=w, bias=bias) if q == 0 and bias is not None
                    else self.nir.Linear(weight=w))
            last = self.add(name, node, source)
            if q:
                last = self.add(f"delay_{name}", self.nir.Delay(
                    delay=np.full(w.shape[0], q * dt / 1e3)), last)
            self.edges.append((last, target))


def to_nir(model: LoadedModel):
    """The :class:`nir.NIRGraph` of a spikeforge network (see module docstring)."""
    from spikeforge.export.capabilities import check_expressible

    check_expressible(model, "nir")
    nir = _nir()
    net: SpikingNetwork = model.network
    spec = net.spec
    first_conv = spec.layers[0].conv
    input_shape = list(first_conv.in_shape) if first_conv is not None else [spec.n_inputs]
    out = _Writer(nir)
    out.nodes["input"] = nir.Input(input_type={"input": np.array(input_shape)})
    previous, previous_spec = "input", None
    for index, (layer, layer_spec) in enumerate(zip(net.layers, spec.layers, strict=True)):
        p, n = layer_spec.neuron, layer_spec.size
        neuron = "out" if index == len(spec.layers) - 1 else f"lif{index}"
        conv = layer_spec.conv
        shape = conv.out_shape if conv is not None else (n,)
        source = previous
        pooled_from = previous_spec.conv if previous_spec is not None else None
        if pooled_from is not None and pooled_from.pool > 1:
            k = pooled_from.pool
            source = out.add(f"pool{index - 1}", nir.AvgPool2d(
                kernel_size=np.array([k, k]), stride=np.array([k, k]),
                padding=np.array([0, 0])), source)  # fmt: skip
        if pooled_from is not None and conv is None:  # feature maps into a dense layer
            source = out.add(f"flat{index}", nir.Flatten(
                input_type={"input": np.array(pooled_from.pooled_shape)}, start_dim=0,
                end_dim=-1), source)  # fmt: skip
        bias_of = _INPUT_BIAS.get(model_of(p).name)
        bias = bias_of(p, n) if bias_of is not None else None
        out.nodes[neuron] = _neuron_node(p, n, shape, layer_spec, layer, nir)
        trainable = (layer.parametrizations.weight.original
                     if hasattr(layer, "parametrizations") else layer.weight)
        if conv is not None:
            channel_bias = np.zeros(conv.channels)
            if bias is not None:
                per_channel = bias.reshape(conv.channels, -1)
                if not np.all(per_channel == per_channel[:, :1]):
                    raise SpikeforgeError(
                        f"layer {index}: a conv layer's bias must be one value per channel "
                        f"to be written as a NIR Conv2d bias")
                channel_bias = per_channel[:, 0].copy()
            name = out.add(f"conv{index}", nir.Conv2d(
                input_shape=conv.in_shape[1:], weight=_numpy(trainable), stride=conv.stride,
                padding=conv.padding, dilation=1, groups=1, bias=channel_bias), source)
            out.edges.append((name, neuron))
        else:
            delays = None
            if layer_spec.delays is not None:
                d_in, _ = layer.clamped_delays()
                delays = (_numpy(d_in), layer.delay_mode)
            out.synapses(f"fc{index}", _numpy(trainable), delays, source, neuron, spec.dt,
                         bias)
        rec = getattr(layer, "recurrent_weight", None)
        if rec is not None:
            delays = None
            if layer_spec.delays is not None:
                _, d_rec = layer.clamped_delays()
                delays = (_numpy(d_rec), layer.delay_mode)
            out.synapses(f"rec{index}", _numpy(rec), delays, neuron, neuron, spec.dt)
        previous, previous_spec = neuron, layer_spec
    out.nodes["output"] = nir.Output(output_type={"output": np.array([spec.layers[-1].size])})
    out.edges.append((previous, "output"))
    metadata = {"spikeforge.dt_ms": float(spec.dt), "spikeforge.readout": model.readout,
                "source": "spikeforge"}
    return nir.NIRGraph(nodes=out.nodes, edges=out.edges, metadata=metadata)


def write_nir(model: LoadedModel, path: Path) -> None:
    """Write the NIR graph of ``model`` to ``path`` (HDF5), atomically."""
    from spikeforge.atomic import atomic_path

    nir = _nir()
    with atomic_path(Path(path)) as tmp:
        nir.write(tmp, to_nir(model))

__all__ = ["from_nir", "read_nir", "to_nir", "write_nir"]
