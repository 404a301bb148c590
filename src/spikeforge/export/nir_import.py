"""NIR import: a NIR graph, as spikeforge or another library wrote it, becomes a network.

**What a graph may hold.** ``Input``, ``Output``; linear nodes ``Linear``, ``Affine``,
``Scale``, ``Flatten``, ``Conv2d``, ``SumPool2d``, ``AvgPool2d``; neuron nodes
``CubaLIF``, ``CubaLI``, ``LIF``, ``LI``, ``IF``, ``I`` (integrator); nested ``NIRGraph``
sub-graphs (inlined: snnTorch writes recurrent layers as a sub-graph ``input -> lif <->
w_rec, lif -> output``, or flat with dotted names). Every path of linear nodes between
two neuron nodes is one linear map, so parallel branches that meet again are summed; the
neuron nodes must then form a chain (each fed by the one before it, optionally by
itself: recurrence), ending in the ``Output``. Conv and pooling nodes become their exact
dense matrices ([out_units, in_units]; image units C-major, ``(c*H + y)*W + x``).

**Spikes and time.** NIR's equations are continuous in seconds; a spike is a pulse.
snnTorch, Norse and Sinabs feed a spike as amplitude 1 for one step of their time step
``dt`` (area ``dt``), which is what the weights they write mean: snnTorch uses dt = 0.1 ms
(``r = tau/dt``, ``w_in = tau_syn/dt``), Norse its ``from_nir(dt=...)`` (1 ms by default),
Sinabs counts time in steps (dt = 1 s in NIR's units). So a foreign graph is imported
at the time step it was written for (``dt``, ms) and each spike is a pulse of area
dt / 1000 s. Graphs that spikeforge wrote (metadata ``source: spikeforge``) use Diracs of
area 1 (see :mod:`spikeforge.export.nir_io`) and their own ``spikeforge.dt_ms``.

**Parameters.** For a neuron node fed by ``x = M S + b`` (M: the summed linear map, S
the pulses of area ``a``, b the summed ``Affine`` / conv biases), spikeforge's weights
are ``M`` times a per-neuron factor and the bias becomes a constant drive of the neuron
model (not an always-on input channel: a bias reaches hidden layers too, and a constant
current is exact in the model's equations)::

    CubaLIF / CubaLI   weight r w_in a / tau_syn,   bias current  r w_in b
    LIF / LI           weight r a / tau,            drive r b / tau   (per s)
    IF / I             weight r a,                  drive r b         (per s)

``v_leak``, ``v_reset``, ``v_threshold`` and per-neuron vectors are kept. A node with
one value per layer, v_leak = v_reset = 0 and no bias becomes
:class:`~spikeforge.neurons.LIFParams` (CubaLIF/CubaLI) or
:class:`~spikeforge.neurons.DeltaLIFParams` (LIF); anything else the general models
:class:`~spikeforge.neurons.CubaLIFParams` / :class:`~spikeforge.neurons.IFParams`
(inference and BPTT; no EventProp gradient). spikeforge then integrates each step exactly.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.export.network_io import READOUTS, LoadedModel
from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
from spikeforge.neurons import CubaLIFParams, DeltaLIFParams, IFParams
from spikeforge.nn import build_network

NEURONS = ("CubaLIF", "CubaLI", "LIF", "LI", "IF", "I")
LINEAR = ("Linear", "Affine", "Scale", "Flatten", "Conv2d", "SumPool2d", "AvgPool2d")
SUPPORTED = ("Input", "Output", *LINEAR, *NEURONS, "NIRGraph")
_WHY = {
    "Conv1d": "spikeforge's convolutional layers are 2-D",
    "Delay": "a NIR Delay delays whole channels by given times; spikeforge's delays are "
             "per-synapse and are not built from NIR yet",
    "Threshold": "a stand-alone Heaviside of a continuous signal; spikeforge neurons "
                 "threshold and reset their own membrane (use IF / LIF / CubaLIF)",
}
MAX_DENSE = 200_000_000
"""Largest dense matrix (entries) a conv / pooling node may become."""


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - nir is a core dependency
        raise SpikeforgeError("NIR import needs the nir package: pip install nir") from exc
    return nir


# -- the graph: sub-graphs inlined --------------------------------------------------------

def _inline(graph) -> tuple[dict, list[tuple[str, str]]]:
    """Nodes and edges of ``graph`` with every nested ``NIRGraph`` replaced by its nodes
    (named ``sub.node``) and its inner ``Input`` / ``Output`` nodes bypassed."""
    nir = _nir()
    nodes: dict = {}
    edges: list[tuple[str, str]] = []
    inner_io: list[str] = []

    def add(g, prefix: str) -> None:
        for name, node in g.nodes.items():
            full = prefix + name
            if isinstance(node, nir.NIRGraph):
                add(node, full + ".")
                ins = [full + "." + k for k, v in node.nodes.items() if isinstance(v, nir.Input)]
                outs = [full + "." + k for k, v in node.nodes.items()
                        if isinstance(v, nir.Output)]
                nodes[full] = ("subgraph", ins, outs)
                continue
            nodes[full] = node
            if prefix and isinstance(node, nir.Input | nir.Output):
                inner_io.append(full)
        edges.extend((prefix + a, prefix + b) for a, b in g.edges)

    add(graph, "")
    resolved = []
    for a, b in edges:
        sources = nodes[a][2] if isinstance(nodes.get(a), tuple) else [a]
        targets = nodes[b][1] if isinstance(nodes.get(b), tuple) else [b]
        resolved += [(s, t) for s in sources for t in targets]
    for name in [k for k, v in nodes.items() if isinstance(v, tuple)]:
        del nodes[name]
    for name in inner_io:  # identity nodes: connect their predecessors to their successors
        preds = [a for a, b in resolved if b == name]
        succs = [b for a, b in resolved if a == name]
        resolved = [e for e in resolved if name not in e] + [(p, s) for p in preds for s in succs]
        del nodes[name]
    for a, b in resolved:
        for end in (a, b):
            if end not in nodes:
                raise SpikeforgeError(f"NIR graph has an edge to or from {end!r}, which is not "
                                      f"a node of the graph")
    return nodes, list(dict.fromkeys(resolved))


# -- linear maps between neuron nodes -----------------------------------------------------

@dataclass
class Signal:
    """What a node outputs as a linear function of the spikes of its sources:
    ``sum_src maps[src] @ S_src + bias``; a map of None is the identity. ``shape``: the
    signal's shape without batch (units = its product, C-major)."""

    maps: dict[str, np.ndarray | None]
    bias: np.ndarray
    shape: tuple[int, ...]

    @property
    def units(self) -> int:
        return math.prod(self.shape)

    def matrix(self, source: str) -> np.ndarray:
        m = self.maps[source]
        return np.eye(self.units) if m is None else m

    def through(self, matrix: np.ndarray, bias: np.ndarray, shape: tuple[int, ...]) -> Signal:
        maps = {k: matrix if m is None else matrix @ m for k, m in self.maps.items()}
        return Signal(maps, matrix @ self.bias + bias, shape)


def _add(a: Signal | None, b: Signal, name: str) -> Signal:
    if a is None:
        return b
    if a.units != b.units:
        raise SpikeforgeError(f"NIR node {name!r} receives inputs of {a.units} and {b.units} "
                              f"units; the branches that meet there must have one size")
    maps = dict(a.maps)
    for key, m in b.maps.items():
        maps[key] = m if key not in maps else a.matrix(key) + b.matrix(key)
    return Signal(maps, a.bias + b.bias, a.shape)


def _pair(value) -> tuple[int, int]:
    v = np.asarray(value).ravel().astype(int)
    return (int(v[0]), int(v[0])) if v.size == 1 else (int(v[0]), int(v[1]))


def _image_shape(signal: Signal, name: str, node) -> tuple[int, int, int]:
    if len(signal.shape) == 3:
        return signal.shape
    hw = getattr(node, "input_shape", None)
    weight = getattr(node, "weight", None)
    if hw is not None and weight is not None:
        c = int(np.asarray(weight).shape[1])
        h, w = _pair(hw)
        if c * h * w == signal.units:
            return (c, h, w)
    raise SpikeforgeError(f"NIR node {name!r} ({type(node).__name__}) needs an image input "
                          f"[channels, height, width] but gets {list(signal.shape)}; give the "
                          f"Input node its image shape")


def _dense_of(function, in_shape: tuple[int, ...], name: str) -> np.ndarray:
    """The matrix [out_units, in_units] of a linear torch ``function`` of images."""
    units = math.prod(in_shape)
    out = function(torch.zeros(1, *in_shape, dtype=torch.float64))
    if units * out.numel() > MAX_DENSE:
        raise SpikeforgeError(f"NIR node {name!r}: its dense matrix would have "
                              f"{units * out.numel():,} entries (more than {MAX_DENSE:,}); "
                              f"spikeforge imports convolutions as dense matrices")
    basis = torch.eye(units, dtype=torch.float64).reshape(units, *in_shape)
    return function(basis).reshape(units, -1).T.numpy().copy()


def _linear_node(name: str, node, signal: Signal) -> Signal:
    """The signal after linear node ``node``."""
    import torch.nn.functional as F

    kind = type(node).__name__
    if kind in ("Linear", "Affine"):
        weight = np.asarray(node.weight, dtype=np.float64)
        if weight.ndim != 2 or weight.shape[1] != signal.units:
            raise SpikeforgeError(
                f"NIR node {name!r}: weight of shape {list(weight.shape)} does not fit its "
                f"input of {signal.units} units (needs [{weight.shape[0]}, {signal.units}])")
        bias = (np.asarray(node.bias, dtype=np.float64).reshape(-1) if kind == "Affine"
                else np.zeros(weight.shape[0]))
        return signal.through(weight, np.broadcast_to(bias, weight.shape[:1]).copy(),
                              (weight.shape[0],))
    if kind == "Scale":
        scale = np.broadcast_to(np.asarray(node.scale, dtype=np.float64).reshape(-1),
                                (signal.units,))
        return signal.through(np.diag(scale), np.zeros(signal.units), signal.shape)
    if kind == "Flatten":
        shape = signal.shape
        start, end = int(node.start_dim) % len(shape), int(node.end_dim) % len(shape)
        flat = (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])
        return Signal(signal.maps, signal.bias, flat)
    image = _image_shape(signal, name, node)
    if kind == "Conv2d":
        weight = torch.as_tensor(np.asarray(node.weight, dtype=np.float64))
        if weight.ndim != 4 or weight.shape[1] * int(node.groups) != image[0]:
            raise SpikeforgeError(f"NIR node {name!r}: kernel of shape {list(weight.shape)} "
                                  f"does not fit an input image {list(image)}")
        padding = node.padding if isinstance(node.padding, str) else _pair(node.padding)

        def conv(x):
            return F.conv2d(x, weight, stride=_pair(node.stride), padding=padding,
                            dilation=_pair(node.dilation), groups=int(node.groups))
        matrix = _dense_of(conv, image, name)
        out_shape = tuple(conv(torch.zeros(1, *image, dtype=torch.float64)).shape[1:])
        channel_bias = np.asarray(node.bias, dtype=np.float64).reshape(-1)
        bias = np.repeat(np.broadcast_to(channel_bias, (out_shape[0],)),
                         out_shape[1] * out_shape[2])
        return signal.through(matrix, bias, out_shape)
    kernel, stride, padding = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
    area = kernel[0] * kernel[1] if kind == "SumPool2d" else 1.0

    def pool(x):
        return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=True) * area
    out_shape = tuple(pool(torch.zeros(1, *image, dtype=torch.float64)).shape[1:])
    return signal.through(_dense_of(pool, image, name), np.zeros(math.prod(out_shape)),
                          out_shape)


class _Graph:
    """The inlined graph with the signal into every neuron / Output node."""

    def __init__(self, nodes: dict, edges: list[tuple[str, str]]) -> None:
        self.nodes, self.edges = nodes, edges
        self.preds: dict[str, list[str]] = {k: [] for k in nodes}
        for a, b in edges:
            self.preds[b].append(a)
        self._out: dict[str, Signal] = {}
        self._busy: set[str] = set()

    def kind(self, name: str) -> str:
        return type(self.nodes[name]).__name__

    def signal_into(self, name: str, skip_cycles: bool = False) -> Signal:
        total = None
        for pred in self.preds[name]:
            try:
                total = _add(total, self.signal_out(pred), name)
            except _Cycle:
                if not skip_cycles:
                    raise
        if total is None:
            raise SpikeforgeError(f"NIR node {name!r} ({self.kind(name)}) has no input")
        return total

    def signal_out(self, name: str) -> Signal:
        if name in self._out:
            return self._out[name]
        if name in self._busy:
            raise _Cycle(name)
        self._busy.add(name)
        kind = self.kind(name)
        if kind == "Input":
            shape = tuple(int(s) for s in _input_shape(self.nodes[name]))
            out = Signal({name: None}, np.zeros(math.prod(shape)), shape)
        elif kind in NEURONS:
            shape = self.neuron_shape(name)
            out = Signal({name: None}, np.zeros(math.prod(shape)), shape)
        else:
            out = _linear_node(name, self.nodes[name], self.signal_into(name))
        self._busy.discard(name)
        self._out[name] = out
        return out

    def neuron_shape(self, name: str) -> tuple[int, ...]:
        """A neuron node's shape: its input's (an image keeps its [C, H, W]; a parameter
        array of that many values gives its own shape to a flat input)."""
        arrays = [np.asarray(getattr(self.nodes[name], f)) for f in _PARAMS
                  if getattr(self.nodes[name], f, None) is not None]
        largest = max(arrays, key=lambda a: a.size)
        self._busy.discard(name)
        try:
            shape = self.signal_into(name, skip_cycles=True).shape
        except SpikeforgeError:  # fed only through its own loop
            return tuple(largest.shape) if largest.size > 1 else (1,)
        finally:
            self._busy.add(name)
        if largest.ndim > 1 and largest.size == math.prod(shape):
            return tuple(largest.shape)
        return shape


class _Cycle(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A loop of linear nodes reached (handled where a neuron's size is inferred)."""


_PARAMS = ("tau_syn", "tau_mem", "tau", "r", "w_in", "v_leak", "v_reset", "v_threshold")


def _input_shape(node) -> np.ndarray:
    types = node.input_type if isinstance(node.input_type, dict) else {"input": node.input_type}
    shape = np.asarray(next(iter(types.values())), dtype=np.int64).ravel()
    return shape if shape.size else np.array([1])


# -- neuron nodes -------------------------------------------------------------------------

def _check_sizes(neuron, node: str, size: int) -> None:
    """Every parameter vector of NIR neuron node ``node`` has one value per neuron (or
    one for all), and every value is a finite number."""
    for what in _PARAMS:
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


def _vec(node, what: str, size: int, default: float = 0.0) -> np.ndarray:
    if not hasattr(node, what) or getattr(node, what) is None:
        return np.full(size, default)
    values = np.asarray(getattr(node, what), dtype=np.float64).ravel()
    return np.broadcast_to(values, (size,)).copy()


def _one(values: np.ndarray) -> bool:
    return bool(np.allclose(values, values[0], rtol=1e-9, atol=0.0))


def _ms(seconds) -> float:
    return round(float(seconds) * 1e3, 9)


def _values(values: np.ndarray) -> tuple[float, ...]:
    return (float(values[0]),) if _one(values) else tuple(float(v) for v in values)


def _neuron(name: str, node, size: int, bias: np.ndarray, area: float, dt: float):
    """(spikeforge neuron parameters, per-neuron weight factor [N]) of a NIR neuron node
    fed by a constant ``bias`` [N] and pulses of ``area`` seconds (module docstring)."""
    kind = type(node).__name__
    _check_sizes(node, name, size)
    spiking = kind in ("CubaLIF", "LIF", "IF")
    r = _vec(node, "r", size, 1.0)
    threshold = _vec(node, "v_threshold", size, 1.0)
    v_leak, v_reset = _vec(node, "v_leak", size), _vec(node, "v_reset", size)
    plain = (not spiking or not np.any(v_reset)) and _one(threshold)
    if kind in ("CubaLIF", "CubaLI"):
        tau_syn, tau_mem = _vec(node, "tau_syn", size), _vec(node, "tau_mem", size)
        w_in = _vec(node, "w_in", size, 1.0)
        current = r * w_in * bias
        if plain and _one(tau_syn) and _one(tau_mem) and not np.any(v_leak) \
                and not np.any(current):
            params = LIFParams(_ms(tau_mem[0]), _ms(tau_syn[0]), float(threshold[0]),
                               spiking=spiking)
        else:
            params = CubaLIFParams(
                tau_mem=_ms(tau_mem[0]), tau_syn=_ms(tau_syn[0]), threshold=_values(threshold),
                v_leak=_values(v_leak), v_reset=_values(v_reset), bias=_values(current),
                tau_mem_per_neuron=() if _one(tau_mem) else tuple(tau_mem * 1e3),
                tau_syn_per_neuron=() if _one(tau_syn) else tuple(tau_syn * 1e3),
                spiking=spiking)
        return params, r * w_in * area / tau_syn
    if kind in ("LIF", "LI"):
        tau = _vec(node, "tau", size)
        drive = r * bias / tau / 1e3  # voltage per ms
        if spiking and plain and _one(tau) and not np.any(v_leak) and not np.any(drive):
            return DeltaLIFParams(_ms(tau[0]), float(threshold[0])), r * area / tau
        params = IFParams(tau_mem=_ms(tau[0]), threshold=_values(threshold),
                          v_leak=_values(v_leak), v_reset=_values(v_reset),
                          drive=_values(drive), spiking=spiking,
                          tau_mem_per_neuron=() if _one(tau) else tuple(tau * 1e3))
        return params, r * area / tau
    params = IFParams(tau_mem=math.inf, threshold=_values(threshold), v_reset=_values(v_reset),
                      drive=_values(r * bias / 1e3), spiking=spiking)
    return params, r * area


# -- the chain of layers ------------------------------------------------------------------

def _check_types(nodes: dict) -> None:
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED:
            why = _WHY.get(kind, "spikeforge has no equivalent")
            raise SpikeforgeError(
                f"NIR node {name!r} has type {kind}, which spikeforge cannot import: {why}")


def _chain(graph: _Graph, input_name: str, output_name: str) -> list[tuple[str, Signal]]:
    """The neuron nodes in layer order, each with the signal into it."""
    neurons = [k for k in graph.nodes if graph.kind(k) in NEURONS]
    into = {k: graph.signal_into(k) for k in neurons}
    order: list[str] = []
    previous = input_name
    while True:
        fed = [k for k in neurons if previous in into[k].maps and k != previous]
        if not fed:
            break
        if len(fed) > 1:
            raise SpikeforgeError(
                f"NIR node {previous!r} feeds several neuron nodes ({', '.join(fed)}); "
                f"spikeforge runs a chain of layers, each fed by the one before it")
        current = fed[0]
        extra = set(into[current].maps) - {previous, current}
        if extra:
            raise SpikeforgeError(
                f"NIR node {current!r} receives spikes from {sorted(extra)[0]!r} as well as "
                f"from {previous!r}; spikeforge runs a chain of layers (no skip connections)")
        order.append(current)
        previous = current
    missing = [k for k in neurons if k not in order]
    if missing:
        raise SpikeforgeError(f"NIR node {missing[0]!r} is not on the chain from the Input to "
                              f"the Output; spikeforge imports one chain of layers")
    if not order:
        raise SpikeforgeError("NIR graph has no neuron nodes between Input and Output")
    out = graph.signal_into(output_name)
    if set(out.maps) != {order[-1]} or out.maps[order[-1]] is not None or np.any(out.bias):
        raise SpikeforgeError(
            f"NIR Output {output_name!r} must read the last neuron node {order[-1]!r} directly "
            f"(not through linear nodes); end the graph with a neuron node")
    return [(k, into[k]) for k in order]


def _meta(graph, key: str, default):
    value = graph.metadata.get(key, default) if isinstance(graph.metadata, dict) else default
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        value = value.item()
    return value


def from_nir(graph, dt: float | None = None, readout: str | None = None) -> LoadedModel:
    """Build a spikeforge network from a NIR graph (see the module docstring).

    Args:
        graph: a :class:`nir.NIRGraph`.
        dt: time step in ms: the step the graph was written for (a spike is a pulse of
            one step) and spikeforge's simulation step. Default: the graph's
            ``spikeforge.dt_ms``, else 1.0 (snnTorch graphs need 0.1).
        readout: readout rule (default: the graph's ``spikeforge.readout``, else
            ``sum_exp`` for a non-spiking output and ``sum`` (spike counts) for a
            spiking one).
    """
    nodes, edges = _inline(graph)
    _check_types(nodes)
    inputs = [k for k, v in nodes.items() if type(v).__name__ == "Input"]
    outputs = [k for k, v in nodes.items() if type(v).__name__ == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise SpikeforgeError(f"NIR graph needs exactly one Input and one Output node, found "
                              f"{len(inputs)} and {len(outputs)}")
    ours = _meta(graph, "source", "") == "spikeforge"
    dt = float(dt if dt is not None else _meta(graph, "spikeforge.dt_ms", 1.0))
    if not (dt > 0):
        raise SpikeforgeError(f"dt must be a positive number of ms, got {dt!r}")
    area = 1.0 if ours else dt / 1e3
    g = _Graph(nodes, edges)
    chain = _chain(g, inputs[0], outputs[0])
    layers, weights = [], []
    previous = inputs[0]
    for name, signal in chain:
        params, scale = _neuron(name, nodes[name], signal.units, signal.bias, area, dt)
        w = signal.matrix(previous) * scale[:, None]
        rec = signal.matrix(name) * scale[:, None] if name in signal.maps else None
        if rec is not None and not params.spiking:
            raise SpikeforgeError(f"NIR node {name!r}: a non-spiking node cannot be recurrent")
        layers.append(LayerSpec(size=signal.units, neuron=params, recurrent=rec is not None))
        weights.append((w, rec))
        previous = name
    n_inputs = g.signal_out(inputs[0]).units
    spec = NetworkSpec(n_inputs=int(n_inputs), layers=tuple(layers), dt=dt)
    with warnings.catch_warnings():  # imported for inference: no EventProp needed
        warnings.filterwarnings("ignore", message=".*cannot learn with method='eventprop'")
        network = build_network(spec)
    with torch.no_grad():
        for layer, (w, rec) in zip(network.layers, weights, strict=True):
            layer.weight.copy_(torch.from_numpy(w))
            if rec is not None:
                layer.recurrent_weight.copy_(torch.from_numpy(rec))
    network.eval()
    default = ("first_spike" if ours else "sum") if layers[-1].neuron.spiking else "sum_exp"
    readout = readout or str(_meta(graph, "spikeforge.readout", default))
    if readout not in READOUTS:
        raise SpikeforgeError(f"unknown readout {readout!r}; choose one of {READOUTS}")
    return LoadedModel(network, readout)


# -- files --------------------------------------------------------------------------------

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


def read_nir(path: Path, dt: float | None = None, readout: str | None = None) -> LoadedModel:
    """Read a NIR file into a spikeforge network (see :func:`from_nir`)."""
    return from_nir(_read_graph(path), dt, readout)
