"""NIR import: a NIR graph becomes a spikeforge network (chain layout, see
:mod:`spikeforge.export.nir_io` for the parameter convention)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.export.network_io import READOUTS, LoadedModel
from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
from spikeforge.nn import build_network


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - nir is a core dependency
        raise SpikeforgeError("NIR import needs the nir package: pip install nir") from exc
    return nir


SUPPORTED = ("Input", "Output", "Linear", "Affine", "CubaLIF", "CubaLI")
_WHY = {
    "LIF": "it has no synaptic current (spikeforge neurons are current-based: use CubaLIF)",
    "LI": "it has no synaptic current (use CubaLI)",
    "IF": "it has no leak (spikeforge neurons are leaky: use CubaLIF)",
    "I": "spikeforge has no pure integrators",
    "Conv1d": "spikeforge has no convolutional layers",
    "Conv2d": "spikeforge has no convolutional layers",
    "SumPool2d": "spikeforge has no pooling layers",
    "AvgPool2d": "spikeforge has no pooling layers",
    "Delay": "spikeforge networks have no synaptic delays",
    "Flatten": "spikeforge inputs are flat channel vectors already",
    "Scale": "spikeforge has no elementwise scaling nodes",
    "Threshold": "spikeforge has no stand-alone threshold nodes",
    "NIRGraph": "nested sub-graphs are not supported",
}


def _check_sizes(neuron, node: str, size: int) -> None:
    """Every parameter vector of NIR neuron node ``node`` has one value per neuron (or
    one for all), and every value is a finite number."""
    for what in ("tau_syn", "tau_mem", "r", "w_in", "v_leak", "v_reset", "v_threshold"):
        if not hasattr(neuron, what):
            continue
        values = np.asarray(getattr(neuron, what), dtype=np.float64).ravel()
        if values.size not in (1, size):
            raise SpikeforgeError(
                f"NIR node {node!r}: {what} has {values.size} values but the layer has "
                f"{size} neurons; give one value per neuron")
        if not np.all(np.isfinite(values)):
            raise SpikeforgeError(f"NIR node {node!r}: {what} contains NaN or infinite "
                                  "values; give finite numbers")


def _uniform(values: np.ndarray, what: str, node: str) -> float:
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size and not np.all(np.isfinite(values)):
        raise SpikeforgeError(f"NIR node {node!r}: {what} contains NaN or infinite values; "
                              "give finite numbers")
    if values.size == 0 or not np.allclose(values, values[0], rtol=1e-9, atol=0.0):
        raise SpikeforgeError(
            f"NIR node {node!r}: {what} differs between neurons; spikeforge needs one "
            f"value per layer"
        )
    return float(values[0])


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 9)


def _node_types(group, prefix: str = "") -> list[tuple[str, str]]:
    """(node name, type) of every node in a NIR HDF5 graph group, sub-graphs included."""
    found = []
    nodes = group.get("nodes")
    for name in nodes.keys() if nodes is not None else []:
        node = nodes[name]
        kind = node["type"][()] if "type" in node else b"?"
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        found.append((prefix + name, kind))
        if kind == "NIRGraph":
            found += _node_types(node, f"{prefix}{name}.")
    return found


def _read_graph(path: Path):
    import h5py

    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise SpikeforgeError(f"NIR file {path} does not exist")
    known = set(nir.ir.__all__) if hasattr(nir, "ir") else set()
    try:
        with h5py.File(path, "r") as handle:
            types = _node_types(handle["node"])
    except (OSError, KeyError) as exc:
        raise SpikeforgeError(f"{path} is not a NIR (HDF5) file ({type(exc).__name__})") from exc
    for name, kind in types:
        if kind not in known:
            raise SpikeforgeError(
                f"NIR file {path}: node {name!r} has unknown type {kind!r}; spikeforge can "
                f"import {', '.join(SUPPORTED)}"
            )
    try:
        return nir.read(path)
    except (ValueError, AssertionError, KeyError, TypeError) as exc:
        raise SpikeforgeError(
            f"NIR file {path} is not a readable NIR graph ({type(exc).__name__}: {exc})"
        ) from exc


def _meta(graph, key: str, default):
    value = graph.metadata.get(key, default) if isinstance(graph.metadata, dict) else default
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        value = value.item()
    return value


def from_nir(graph, dt: float | None = None, readout: str | None = None) -> LoadedModel:
    """Build a spikeforge network from a NIR graph (chain layout, module docstring).

    Args:
        graph: a :class:`nir.NIRGraph`.
        dt: simulation step in ms (default: the graph's ``spikeforge.dt_ms``, else 1.0).
        readout: readout rule (default: the graph's ``spikeforge.readout``, else
            ``sum_exp`` for an LI output and ``first_spike`` for a spiking output).
    """
    nir = _nir()
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED:
            why = _WHY.get(kind, "spikeforge cannot express it")
            raise SpikeforgeError(
                f"NIR node {name!r} has type {kind}, which spikeforge cannot import: {why}"
            )
    successors: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        successors.setdefault(src, []).append(dst)
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise SpikeforgeError(f"NIR graph needs exactly one Input node, found {len(inputs)}")
    dt = float(dt if dt is not None else _meta(graph, "spikeforge.dt_ms", 1.0))
    layers, weights, recurrents = [], [], []
    current, n_in = inputs[0], None
    visited = set()
    while True:
        nxt = [s for s in successors.get(current, []) if s not in visited]
        if not nxt:
            raise SpikeforgeError(f"NIR node {current!r} leads nowhere; the graph needs an Output")
        if len(nxt) > 1:
            raise SpikeforgeError(
                f"NIR node {current!r} branches to {nxt}; spikeforge imports layer chains only"
            )
        node_name = nxt[0]
        visited.add(current)
        node = graph.nodes[node_name]
        if isinstance(node, nir.Output):
            break
        if not isinstance(node, nir.Linear | nir.Affine):
            raise SpikeforgeError(
                f"NIR node {node_name!r} ({type(node).__name__}) follows {current!r}; "
                f"spikeforge expects a Linear/Affine weight node there"
            )
        weight = np.asarray(node.weight, dtype=np.float64)
        if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
            raise SpikeforgeError(
                f"NIR node {node_name!r} (Affine) has a non-zero bias, which spikeforge "
                f"neurons cannot express (no bias current); remove the bias"
            )
        if weight.ndim != 2:
            raise SpikeforgeError(f"NIR node {node_name!r}: weight must be 2-D [out, in]")
        n_in = weight.shape[1] if n_in is None else n_in
        visited.add(node_name)
        after = [s for s in successors.get(node_name, []) if s not in visited]
        if len(after) != 1 or not isinstance(graph.nodes[after[0]], nir.CubaLIF | nir.CubaLI):
            raise SpikeforgeError(
                f"NIR node {node_name!r} must feed exactly one CubaLIF/CubaLI node"
            )
        neuron_name = after[0]
        neuron = graph.nodes[neuron_name]
        spiking = isinstance(neuron, nir.CubaLIF)
        _check_sizes(neuron, neuron_name, weight.shape[0])
        tau_syn = _uniform(neuron.tau_syn, "tau_syn", neuron_name)
        tau_mem = _uniform(neuron.tau_mem, "tau_mem", neuron_name)
        if np.any(np.asarray(neuron.v_leak) != 0):
            raise SpikeforgeError(
                f"NIR node {neuron_name!r}: v_leak must be 0 (spikeforge's resting potential)"
            )
        threshold = 1.0
        if spiking:
            if np.any(np.asarray(neuron.v_reset) != 0):
                raise SpikeforgeError(f"NIR node {neuron_name!r}: v_reset must be 0")
            threshold = _uniform(neuron.v_threshold, "v_threshold", neuron_name)
        scale = (np.asarray(neuron.r, np.float64) * np.asarray(neuron.w_in, np.float64)
                 / np.asarray(neuron.tau_syn, np.float64)).reshape(-1)
        scale = np.broadcast_to(scale, (weight.shape[0],))
        weights.append(weight * scale[:, None])
        rec = None
        for succ in successors.get(neuron_name, []):
            cand = graph.nodes[succ]
            if isinstance(cand, nir.Linear | nir.Affine) and neuron_name in successors.get(
                    succ, []):
                rec = np.asarray(cand.weight, dtype=np.float64)
                if rec.shape != (weight.shape[0], weight.shape[0]):
                    raise SpikeforgeError(
                        f"NIR node {succ!r}: recurrent weight of shape {list(rec.shape)} does "
                        f"not fit layer {neuron_name!r} of {weight.shape[0]} neurons (needs "
                        f"[{weight.shape[0]}, {weight.shape[0]}])")
                rec = rec * scale[:, None]
                visited.add(succ)
        recurrents.append(rec)
        layers.append(LayerSpec(
            size=weight.shape[0], recurrent=rec is not None,
            neuron=LIFParams(_ms(tau_mem), _ms(tau_syn), threshold, spiking=spiking),
        ))  # fmt: skip
        current = neuron_name
    if not layers:
        raise SpikeforgeError("NIR graph has no layers between Input and Output")
    spec = NetworkSpec(n_inputs=int(n_in), layers=tuple(layers), dt=dt)
    network = build_network(spec)
    with torch.no_grad():
        for layer, w, rec in zip(network.layers, weights, recurrents, strict=True):
            if tuple(w.shape) != tuple(layer.weight.shape):
                raise SpikeforgeError(
                    f"NIR weight of shape {list(w.shape)} does not fit a layer "
                    f"{list(layer.weight.shape)}; layer sizes must chain"
                )
            layer.weight.copy_(torch.from_numpy(w))
            if rec is not None:
                layer.recurrent_weight.copy_(torch.from_numpy(rec))
    network.eval()
    default = "first_spike" if layers[-1].neuron.spiking else "sum_exp"
    readout = readout or str(_meta(graph, "spikeforge.readout", default))
    if readout not in READOUTS:
        raise SpikeforgeError(f"unknown readout {readout!r}; choose one of {READOUTS}")
    return LoadedModel(network, readout)


def read_nir(path: Path, dt: float | None = None, readout: str | None = None) -> LoadedModel:
    """Read a NIR file into a spikeforge network (see :func:`from_nir`)."""
    return from_nir(_read_graph(path), dt, readout)
