"""NIR import: a NIR graph, as spikeforge or another library wrote it, becomes a network.

**What a graph may hold.** ``Input``, ``Output``; linear nodes ``Linear``, ``Affine``,
``Scale``, ``Flatten``, ``Conv2d``, ``SumPool2d``, ``AvgPool2d``; ``Delay``; neuron nodes
``CubaLIF``, ``CubaLI``, ``LIF``, ``LI``, ``IF``, ``I`` (integrator); ``Threshold`` right
after an ``I`` / ``LI`` / ``CubaLI`` node that feeds nothing else (the pair is NIR's
``IF`` / ``LIF`` / ``CubaLIF``: integrator, threshold and reset to 0; a Threshold
anywhere else is a stateless Heaviside of a continuous signal and is refused); nested
``NIRGraph`` sub-graphs (inlined: snnTorch writes recurrent layers as a sub-graph
``input -> lif <-> w_rec, lif -> output``, or flat with dotted names). Every path of
linear and delay nodes between two neuron nodes is one linear map per delay, so parallel
branches that meet again are summed; the neuron nodes must then form a chain (each fed
by the one before it, optionally by itself: recurrence), ending in the ``Output``. A
graph with skip connections or branches into several neuron nodes is refused, naming
the node (spikeforge's networks are chains of layers).

**Structure.** A neuron node fed by one ``Conv2d`` (square kernel, no dilation or
groups), optionally behind an ``AvgPool2d`` with kernel = stride and no padding on a conv
layer's maps, becomes a conv layer (its kernel trainable); a dense layer behind such a
pooling (and a ``Flatten``) reads the pooled maps. Other conv and pooling nodes become
their exact dense matrices ([out_units, in_units]; image units C-major,
``(c*H + y)*W + x``).

**Delays.** A ``Delay`` (y(t) = x(t - d) per channel) on the way from a source to a
neuron node gives each synapse the delay of its path, rounded to whole steps of dt:
``q = rint(d / dt)`` (nearest step, halves to even, as NumPy rounds). A Delay after the
``Linear`` delays per neuron, one before it per input channel; paths with several delays
that reach one synapse are each kept: a synapse reached at two adjacent steps q, q + 1
with weights (1 - f) w and f w is spikeforge's interpolated delay (q + f) dt, any other
mix is refused. Delayed layers run spikeforge's LIF / LI (or delta-synapse LIF) model,
so the neuron node must map to one of them (one tau per layer, no v_leak, v_reset or
bias), else the import is refused naming the node.

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
Graphs spikeforge wrote carry each layer's model and exact values in node metadata
(:mod:`spikeforge.export.nir_io`); they are used where the NIR values still say the same
(so the round trip rebuilds the same model class, ALIF included), else the NIR values
win.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.export.network_io import READOUTS, LoadedModel
from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
from spikeforge.model.connectivity import ConvSpec, DelaySpec
from spikeforge.neurons import (
    MODELS,
    AdLIFParams,
    ALIFParams,
    CubaLIFParams,
    DeltaLIFParams,
    IFParams,
)
from spikeforge.nn import build_network

NEURONS = ("CubaLIF", "CubaLI", "LIF", "LI", "IF", "I")
LINEAR = ("Linear", "Affine", "Scale", "Flatten", "Conv2d", "SumPool2d", "AvgPool2d")
SUPPORTED = ("Input", "Output", *LINEAR, *NEURONS, "Delay", "Threshold", "NIRGraph")
_WHY = {
    "Conv1d": "spikeforge's convolutional layers are 2-D",
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

def inline_graph(graph) -> tuple[dict, list[tuple[str, str]]]:
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
    ``sum_src sum_q maps[src][q] @ S_src(t - q dt) + bias``; a matrix of None is the
    identity, ``q`` a delay in whole steps of dt. ``shape``: the signal's shape without
    batch (units = its product, C-major). ``paths[src]``: the structured nodes (conv,
    pooling, flatten, linear) the signal passed since ``src``, in order, or None once it
    went through anything else or through parallel branches."""

    maps: dict[str, dict[int, np.ndarray | None]]
    bias: np.ndarray
    shape: tuple[int, ...]
    paths: dict[str, tuple | None] = field(default_factory=dict)

    @property
    def units(self) -> int:
        return math.prod(self.shape)

    def matrix(self, source: str, q: int = 0) -> np.ndarray:
        m = self.maps[source][q]
        return np.eye(self.units) if m is None else m

    def through(self, matrix: np.ndarray, bias: np.ndarray, shape: tuple[int, ...],
                step: tuple | None = None) -> Signal:
        maps = {k: {q: matrix if m is None else matrix @ m for q, m in terms.items()}
                for k, terms in self.maps.items()}
        paths = {k: None if p is None or step is None else (*p, step)
                 for k, p in self.paths.items()}
        return Signal(maps, matrix @ self.bias + bias, shape, paths)

    def delayed(self, steps: np.ndarray, name: str) -> Signal:
        """The signal through a NIR ``Delay`` of ``steps`` [units] whole steps."""
        if np.any(self.bias):
            raise SpikeforgeError(f"NIR node {name!r} (Delay) delays a constant bias; "
                                  f"spikeforge's delays act on spikes: move the Affine bias "
                                  f"after the Delay")
        maps: dict[str, dict[int, np.ndarray | None]] = {}
        for k, terms in self.maps.items():
            out: dict[int, np.ndarray] = {}
            for q, _ in terms.items():
                m = self.matrix(k, q)
                for u in np.unique(steps):
                    part = m * (steps == u)[:, None]
                    out[q + int(u)] = out.get(q + int(u), 0.0) + part
            maps[k] = out
        return Signal(maps, self.bias.copy(), self.shape, {k: None for k in self.paths})


def _add(a: Signal | None, b: Signal, name: str) -> Signal:
    if a is None:
        return b
    if a.units != b.units:
        raise SpikeforgeError(f"NIR node {name!r} receives inputs of {a.units} and {b.units} "
                              f"units; the branches that meet there must have one size")
    maps = {k: dict(v) for k, v in a.maps.items()}
    paths = dict(a.paths)
    for key, terms in b.maps.items():
        if key not in maps:
            maps[key], paths[key] = dict(terms), b.paths.get(key)
            continue
        paths[key] = None
        for q in terms:
            maps[key][q] = (terms[q] if q not in maps[key]
                            else a.matrix(key, q) + b.matrix(key, q))
    return Signal(maps, a.bias + b.bias, a.shape, paths)


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
                              (weight.shape[0],), ("linear", weight))
    if kind == "Scale":
        scale = np.broadcast_to(np.asarray(node.scale, dtype=np.float64).reshape(-1),
                                (signal.units,))
        return signal.through(np.diag(scale), np.zeros(signal.units), signal.shape)
    if kind == "Flatten":
        shape = signal.shape
        start, end = int(node.start_dim) % len(shape), int(node.end_dim) % len(shape)
        flat = (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])
        paths = {k: None if p is None else (*p, ("flatten", None))
                 for k, p in signal.paths.items()}
        return Signal(signal.maps, signal.bias, flat, paths)
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
        return signal.through(matrix, bias, out_shape, ("conv", node))
    kernel, stride, padding = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
    area = kernel[0] * kernel[1] if kind == "SumPool2d" else 1.0

    def pool(x):
        return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=True) * area
    out_shape = tuple(pool(torch.zeros(1, *image, dtype=torch.float64)).shape[1:])
    return signal.through(_dense_of(pool, image, name), np.zeros(math.prod(out_shape)),
                          out_shape, (kind.lower(), node))


class _Graph:
    """The inlined graph with the signal into every neuron / Output node."""

    def __init__(self, nodes: dict, edges: list[tuple[str, str]], dt: float) -> None:
        self.nodes, self.edges, self.dt = nodes, edges, dt
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
            out = Signal({name: {0: None}}, np.zeros(math.prod(shape)), shape, {name: ()})
        elif kind in NEURONS:
            shape = self.neuron_shape(name)
            out = Signal({name: {0: None}}, np.zeros(math.prod(shape)), shape, {name: ()})
        elif kind == "Delay":
            signal = self.signal_into(name)
            out = signal.delayed(_delay_steps(name, self.nodes[name], signal.units, self.dt),
                                 name)
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


def _delay_steps(name: str, node, units: int, dt: float) -> np.ndarray:
    """A NIR ``Delay`` node's delays [units] in whole steps of ``dt`` ms: ``rint(d / dt)``
    (nearest step, halves to even), refusing negative or non-finite delays."""
    delay = np.asarray(node.delay, dtype=np.float64).ravel()
    if delay.size not in (1, units):
        raise SpikeforgeError(f"NIR node {name!r} (Delay) has {delay.size} delays for "
                              f"{units} channels; give one delay per channel")
    if not np.all(np.isfinite(delay)) or np.any(delay < 0):
        raise SpikeforgeError(f"NIR node {name!r} (Delay): delays must be finite and >= 0 s")
    return np.broadcast_to(np.rint(delay * 1e3 / dt), (units,)).astype(np.int64)


THRESHOLD_FEEDS = {"I": "IF", "LI": "LIF", "CubaLI": "CubaLIF"}
"""Which node a NIR ``Threshold`` may follow, and the spiking node the pair becomes."""


def _fuse_thresholds(nodes: dict, edges: list[tuple[str, str]]):
    """Every ``Threshold`` that directly follows an ``I`` / ``LI`` / ``CubaLI`` node which
    feeds nothing else becomes, with it, NIR's ``IF`` / ``LIF`` / ``CubaLIF`` (the pair's
    name is the integrator's; it resets v to 0 after a spike). Any other ``Threshold`` is
    refused, naming the node and why."""
    nir = _nir()
    nodes, edges = dict(nodes), list(edges)
    for name in [k for k, v in nodes.items() if type(v).__name__ == "Threshold"]:
        preds = [a for a, b in edges if b == name]
        pred = preds[0] if len(preds) == 1 else None
        kind = type(nodes[pred]).__name__ if pred is not None else None
        feeds = [b for a, b in edges if a == pred] if pred is not None else []
        if kind not in THRESHOLD_FEEDS or feeds != [name]:
            why = (f"its input is {len(preds)} nodes" if pred is None else
                   f"it follows {pred!r} ({kind})" if kind not in THRESHOLD_FEEDS else
                   f"{pred!r} also feeds {', '.join(repr(b) for b in feeds if b != name)}")
            raise SpikeforgeError(
                f"NIR node {name!r} has type Threshold, which spikeforge cannot import "
                f"here: {why}; spikeforge reads a Threshold only directly after an "
                f"integrator (I, LI, CubaLI) that feeds nothing else, as a spiking neuron "
                f"(a stand-alone Heaviside of a continuous signal has no spikeforge "
                f"equivalent)")
        src = nodes[pred]
        shape = np.asarray(src.r).shape
        thr = np.broadcast_to(np.asarray(nodes[name].threshold, dtype=np.float64),
                              shape).copy() if np.asarray(nodes[name].threshold).size in (
            1, math.prod(shape)) else None
        if thr is None:
            raise SpikeforgeError(f"NIR node {name!r} (Threshold) has "
                                  f"{np.asarray(nodes[name].threshold).size} thresholds for "
                                  f"the {math.prod(shape)} neurons of {pred!r}")
        common = dict(v_threshold=thr.reshape(shape), v_reset=np.zeros(shape))
        if kind == "I":
            nodes[pred] = nir.IF(r=np.asarray(src.r, dtype=np.float64), **common)
        elif kind == "LI":
            nodes[pred] = nir.LIF(tau=src.tau, r=src.r, v_leak=src.v_leak, **common)
        else:
            nodes[pred] = nir.CubaLIF(tau_syn=src.tau_syn, tau_mem=src.tau_mem, r=src.r,
                                      v_leak=src.v_leak, w_in=src.w_in, **common)
        succs = [b for a, b in edges if a == name]
        edges = [e for e in edges if name not in e] + [(pred, b) for b in succs]
        del nodes[name]
    return nodes, edges


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


def _ms_all(seconds: np.ndarray) -> tuple[float, ...]:
    return tuple(_ms(v) for v in seconds)


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
                tau_mem_per_neuron=() if _one(tau_mem) else _ms_all(tau_mem),
                tau_syn_per_neuron=() if _one(tau_syn) else _ms_all(tau_syn),
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
                          tau_mem_per_neuron=() if _one(tau) else _ms_all(tau))
        return params, r * area / tau
    params = IFParams(tau_mem=math.inf, threshold=_values(threshold), v_reset=_values(v_reset),
                      drive=_values(r * bias / 1e3), spiking=spiking)
    return params, r * area


# -- what spikeforge wrote into node metadata ---------------------------------------------

def _node_meta(node, key: str):
    meta = getattr(node, "metadata", None) or {}
    value = meta.get(key)
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else value
    if isinstance(value, bytes):
        value = value.decode()
    return value


def _close(a, b) -> bool:
    """Whether two parameter objects of one class hold the same values up to the float
    rounding of a NIR round trip (seconds <-> ms, products of r and w_in)."""
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, bool | str) or isinstance(y, bool | str):
            if x != y:
                return False
            continue
        x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
        if x.shape != y.shape or not np.allclose(x, y, rtol=1e-9, atol=1e-12,
                                                    equal_nan=False):
            return False
    return True


def _hinted(params, node):
    """The parameters spikeforge wrote for this node (metadata ``spikeforge.neuron``: model
    name and exact values) when the node's NIR values still say the same; else ``params``
    (in the hinted model's class where the values fit it). The NIR values always win:
    an edited file imports what it says."""
    raw = _node_meta(node, "spikeforge.neuron")
    if not isinstance(raw, str):
        return params
    data = json.loads(raw)
    model_name = data.pop("model", None)
    cls = next((t for t, m in MODELS.items() if m.name == model_name), None)
    if cls is None:
        return params
    hint = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    converted = params
    if cls is CubaLIFParams and type(params) is LIFParams:
        converted = CubaLIFParams(tau_mem=params.tau_mem, tau_syn=params.tau_syn,
                                  threshold=(params.threshold,), spiking=params.spiking)
    elif cls is IFParams and type(params) is DeltaLIFParams:
        converted = IFParams(tau_mem=params.tau_mem, threshold=(params.threshold,))
    elif cls in (ALIFParams, AdLIFParams) and type(params) is LIFParams:
        # the extension's adaptation values from the metadata, the rest from the node
        converted = replace(hint, tau_mem=params.tau_mem, tau_syn=params.tau_syn,
                            threshold=params.threshold, spiking=params.spiking)
    if type(converted) is not cls:
        return params
    per_neuron = [f for f in ("tau_mem", "tau_syn") if getattr(converted, f"{f}_per_neuron", ())]
    if per_neuron:  # the layer's scalar taus are not in the file (per-neuron values are)
        converted = replace(converted, **{f: getattr(hint, f) for f in per_neuron})
    return hint if _close(converted, hint) else converted


def _per_neuron_lif(params, node, meta: dict, size: int):
    """(LIF / ALIF parameters, (log tau_mem, log tau_syn) [N]) of a layer spikeforge wrote
    with per-neuron time constants (``tau_spread > 0``), where the node still is such a
    layer (no v_leak, v_reset or bias, one threshold); else None. The log-taus come from
    the metadata where they give the node's taus, else from the node."""
    raw = _node_meta(node, "spikeforge.neuron")
    if not meta.get("tau_spread") or not isinstance(raw, str):
        return None
    data = json.loads(raw)
    cls = {"lif": LIFParams, "alif": ALIFParams}.get(data.pop("model", None))
    if cls is None or type(node).__name__ not in ("CubaLIF", "CubaLI"):
        return None
    if isinstance(params, CubaLIFParams):
        if any(params.v_leak) or any(params.v_reset) or any(params.bias) \
                or len(params.threshold) != 1:
            return None
        threshold = params.threshold[0]
    elif isinstance(params, LIFParams):
        threshold = params.threshold
    else:
        return None
    hint = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    lifted = replace(hint, threshold=float(threshold), spiking=params.spiking)
    logs = []
    for name in ("tau_mem", "tau_syn"):
        taus = _vec(node, name, size) * 1e3
        saved = _node_meta(node, f"spikeforge.log_{name}")
        if isinstance(saved, np.ndarray) and saved.shape == (size,) and np.allclose(
                np.exp(saved.astype(np.float64)), taus, rtol=1e-6):
            logs.append(saved)
        else:
            logs.append(np.log(taus))
    return lifted, tuple(logs)


def _layer_meta(node) -> dict:
    raw = _node_meta(node, "spikeforge.layer")
    return json.loads(raw) if isinstance(raw, str) else {}


# -- delays and structure of a layer's synapses -------------------------------------------

def _synapses(name: str, terms: dict[int, np.ndarray], dt: float):
    """(weight [out, in], delay in ms [out, in] or None, delay mode or None) of synapses
    given per delay step ``q`` (``terms[q]`` [out, in]). Each synapse has its weight at
    one step (a delay of q dt, mode ``round``) or split over two adjacent steps q, q + 1
    as (1 - f) w and f w, which is spikeforge's interpolated delay (q + f) dt."""
    if set(terms) == {0}:
        return terms[0], None, None
    top = max(terms)
    stack = np.stack([terms.get(q, np.zeros_like(terms[min(terms)])) for q in range(top + 1)])
    nonzero = stack != 0
    count = nonzero.sum(axis=0)
    weight = stack.sum(axis=0)
    first = np.argmax(nonzero, axis=0)
    if count.max(initial=0) <= 1:
        return weight, first * dt, "round"
    if count.max() > 2:
        j, i = np.argwhere(count > 2)[0]
        raise SpikeforgeError(f"NIR node {name!r}: the synapse from unit {i} to neuron {j} "
                              f"arrives with {count[j, i]} different delays; spikeforge gives "
                              f"each synapse one delay (or one split over two adjacent steps)")
    last = top - np.argmax(nonzero[::-1], axis=0)
    split = count == 2
    safe = np.where(weight == 0, 1.0, weight)
    later = np.take_along_axis(stack, np.minimum(first + 1, top)[None], axis=0)[0]
    frac = np.where(split, later / safe, 0.0)
    bad = split & ((last != first + 1) | (weight == 0) | (frac <= 0) | (frac >= 1))
    if bad.any():
        j, i = np.argwhere(bad)[0]
        raise SpikeforgeError(
            f"NIR node {name!r}: the synapse from unit {i} to neuron {j} arrives at two "
            f"delays that are not one spikeforge synapse (needs adjacent steps q, q+1 with "
            f"weights (1 - f) w and f w, 0 < f < 1)")
    return weight, (first + frac) * dt, "interpolate"


def _pool_of(step) -> int | None:
    """The pool size of a NIR ``AvgPool2d`` spikeforge can run (square, stride = kernel,
    no padding), else None."""
    kind, node = step
    if kind != "avgpool2d":
        return None
    k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
    return k[0] if k[0] == k[1] and s == k and p == (0, 0) else None


def _conv_of(step, in_shape: tuple[int, ...]) -> ConvSpec | None:
    """The :class:`ConvSpec` of a NIR ``Conv2d`` node on ``in_shape`` images, or None where
    spikeforge's conv layers cannot run it (dilation, groups, non-square kernels...)."""
    kind, node = step
    if kind != "conv" or len(in_shape) != 3 or isinstance(node.padding, str):
        return None
    weight = np.asarray(node.weight)
    stride, padding = _pair(node.stride), _pair(node.padding)
    if (weight.ndim != 4 or weight.shape[2] != weight.shape[3] or int(node.groups) != 1
            or _pair(node.dilation) != (1, 1) or stride[0] != stride[1]
            or padding[0] != padding[1] or weight.shape[1] != in_shape[0]):
        return None
    return ConvSpec(tuple(int(v) for v in in_shape), int(weight.shape[0]),
                    int(weight.shape[2]), stride[0], padding[0])


def _saved_delays(node, key: str, delay: np.ndarray, weight: np.ndarray, spec: DelaySpec,
                  dt: float) -> np.ndarray:
    """The trainable delays spikeforge saved in the node's metadata where they give the
    graph's delays (clamped to [0, max_ms] and rounded or split as ``spec.mode`` says) on
    every synapse with a weight; else the graph's own delays."""
    saved = _node_meta(node, key)
    if not isinstance(saved, np.ndarray) or saved.shape != delay.shape:
        return delay
    used = np.clip(saved, 0.0, spec.max_ms)
    live = weight != 0
    if spec.mode == "round":
        same = np.rint(used / dt) == np.rint(delay / dt)
    else:
        same = np.abs(used - delay) <= 1e-6 * dt
    return saved.astype(np.float64) if np.all(same | ~live) else delay


@dataclass
class _Layer:
    """One imported layer: its spec and the tensors to load."""

    name: str
    spec: LayerSpec
    weight: np.ndarray          # dense [out, in] (the trainable tensor for conv / pooled)
    recurrent: np.ndarray | None = None
    delay: np.ndarray | None = None
    recurrent_delay: np.ndarray | None = None
    kernel: np.ndarray | None = None
    pooled: np.ndarray | None = None
    log_taus: tuple[np.ndarray, np.ndarray] | None = None
    became: str = ""


def _structure(layer: _Layer, path: tuple | None, source_shape: tuple[int, ...],
               previous: _Layer | None, scale: np.ndarray) -> None:
    """Make ``layer`` a conv layer, or a layer reading ``previous``'s pooled maps, where its
    input path is one spikeforge runs as such (else it keeps its dense matrix)."""
    if path is None or layer.delay is not None or not _one(scale):
        return
    steps = list(path)
    pool = _pool_of(steps[0]) if steps else None
    pooled_from = None
    if pool is not None:
        conv = previous.spec.conv if previous is not None else None
        if conv is None or conv.pool != 1 or len(steps) < 2:
            return
        pooled_from = replace(conv, pool=pool)
        source_shape = pooled_from.pooled_shape
        steps = steps[1:]
    if len(steps) == 1 and layer.spec.neuron.spiking:
        conv = _conv_of(steps[0], source_shape)
        if conv is None or conv.units != layer.spec.size:
            return
        layer.spec = replace(layer.spec, conv=conv)
        layer.kernel = np.asarray(steps[0][1].weight, dtype=np.float64) * scale[0]
        layer.became += f", conv {conv.channels}x{conv.kernel}x{conv.kernel}"
    elif pooled_from is not None and [k for k, _ in steps][-1] == "linear" and all(
            k == "flatten" for k, _ in steps[:-1]):
        layer.pooled = np.asarray(steps[-1][1], dtype=np.float64) * scale[0]
        layer.became += f", reads {pool}x{pool}-pooled maps"
    else:
        return
    if pooled_from is not None:
        previous.spec = replace(previous.spec, conv=pooled_from)
        previous.became += f", pool {pool}"


# -- the chain of layers ------------------------------------------------------------------

def _check_time_constants(nodes: dict, dt: float) -> None:
    """Refuse a neuron node with a time constant not above the step, naming the node; such
    values are what Norse's ``to_nir`` records (dt·tau), so the error says how to read
    them."""
    for name, node in nodes.items():
        if type(node).__name__ not in NEURONS:
            continue
        for what in ("tau", "tau_mem", "tau_syn"):
            if not hasattr(node, what):
                continue
            tau = np.asarray(getattr(node, what), dtype=np.float64).ravel() * 1e3  # ms
            if tau.size and np.nanmin(tau) <= dt:
                raise SpikeforgeError(
                    f"NIR node {name!r} ({type(node).__name__}): {what} = "
                    f"{np.nanmin(tau):.6g} ms is not above the step dt = {dt:g} ms; a graph "
                    "written by Norse's to_nir records dt*tau for tau: import it with "
                    "--writer norse (and --dt its step), else give a smaller --dt")


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
                f"NIR node {previous!r} feeds several neuron nodes ({', '.join(fed)}): a "
                f"skip connection or a branch; spikeforge runs a chain of layers, each fed "
                f"only by the one before it (and itself), and has no engine for other graphs")
        current = fed[0]
        extra = set(into[current].maps) - {previous, current}
        if extra:
            raise SpikeforgeError(
                f"NIR node {current!r} receives spikes from {sorted(extra)[0]!r} as well as "
                f"from {previous!r}: a skip connection; spikeforge runs a chain of layers, "
                f"each fed only by the one before it (and itself)")
        order.append(current)
        previous = current
    missing = [k for k in neurons if k not in order]
    if missing:
        raise SpikeforgeError(f"NIR node {missing[0]!r} is not on the chain from the Input to "
                              f"the Output; spikeforge imports one chain of layers")
    if not order:
        raise SpikeforgeError("NIR graph has no neuron nodes between Input and Output")
    out = graph.signal_into(output_name)
    if set(out.maps) != {order[-1]} or out.maps[order[-1]] != {0: None} or np.any(out.bias):
        raise SpikeforgeError(
            f"NIR Output {output_name!r} must read the last neuron node {order[-1]!r} directly "
            f"(not through linear or delay nodes); end the graph with a neuron node")
    return [(k, into[k]) for k in order]


def _has_bias(node) -> bool:
    """Whether a NIR node has a non-zero ``bias`` (``np.any`` cannot take the torch
    tensors that Sinabs and Norse leave in their graphs; ``np.asarray`` can)."""
    bias = getattr(node, "bias", None)
    return bias is not None and bool(np.any(np.asarray(bias, dtype=np.float64)))


def _meta(graph, key: str, default):
    value = graph.metadata.get(key, default) if isinstance(graph.metadata, dict) else default
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        value = value.item()
    return value


def _describe(node, params) -> str:
    from spikeforge.neurons import model_of

    return f"{type(node).__name__} -> {model_of(params).name} ({type(params).__name__})"


def _layers(g: _Graph, chain, input_name: str, area: float, dt: float) -> list[_Layer]:
    layers: list[_Layer] = []
    previous, source_shape = input_name, g.signal_out(input_name).shape
    for name, signal in chain:
        node = g.nodes[name]
        params, scale = _neuron(name, node, signal.units, signal.bias, area, dt)
        params = _hinted(params, node)
        meta = _layer_meta(node)
        per_neuron = _per_neuron_lif(params, node, meta, signal.units)
        if per_neuron is not None:
            params = per_neuron[0]
        terms = {q: signal.matrix(previous, q) * scale[:, None] for q in signal.maps[previous]}
        w, delay, mode = _synapses(name, terms, dt)
        rec = rec_delay = None
        if name in signal.maps:
            rec_terms = {q: signal.matrix(name, q) * scale[:, None] for q in signal.maps[name]}
            rec, rec_delay, rec_mode = _synapses(name, rec_terms, dt)
            if rec_mode is not None and mode is not None and rec_mode != mode:
                mode = "interpolate"  # whole steps are interpolated delays with f = 0
            mode = mode or rec_mode
            if not params.spiking:
                raise SpikeforgeError(f"NIR node {name!r}: a non-spiking node cannot be "
                                      f"recurrent")
        delays = None
        if mode is not None or meta.get("delays"):
            from spikeforge.neurons import model_of

            if not model_of(params).supports("delays"):
                raise SpikeforgeError(
                    f"NIR node {name!r} ({type(node).__name__}) receives delayed spikes, but "
                    f"it imports as spikeforge's {model_of(params).name} model, which has no "
                    f"synaptic delays (delays need one tau per layer, v_leak = v_reset = 0 "
                    f"and no bias: spikeforge's LIF / LI or delta-synapse LIF)")
            longest = max(float(np.max(d)) for d in (delay, rec_delay) if d is not None) \
                if (delay is not None or rec_delay is not None) else 0.0
            saved = meta.get("delays") or {}
            delays = DelaySpec(max_ms=max(float(saved.get("max_ms", 0.0)), longest),
                               init=saved.get("init", 0.0), learn=bool(saved.get("learn", False)),
                               mode=saved.get("mode", mode or "round"))
            delay = np.zeros_like(w) if delay is None else delay
            if rec is not None and rec_delay is None:
                rec_delay = np.zeros_like(rec)
            delay = _saved_delays(node, "spikeforge.delay_ms", delay, w, delays, dt)
            if rec is not None:
                rec_delay = _saved_delays(node, "spikeforge.recurrent_delay_ms", rec_delay,
                                          rec, delays, dt)
        init = {k: meta[k] for k in ("weight_mean", "weight_std", "recurrent_std")
                if k in meta}
        spec = LayerSpec(size=signal.units, neuron=params, recurrent=rec is not None,
                         delays=delays, **init,
                         tau_spread=float(meta["tau_spread"]) if per_neuron else 0.0)
        layer = _Layer(name, spec, w, rec, delay, rec_delay, became=_describe(node, params))
        if per_neuron is not None:
            layer.log_taus = per_neuron[1]
            layer.became += ", per-neuron taus"
        if delays is not None:
            layer.became += f", delays ({delays.mode}, up to {delays.max_ms:g} ms)"
        _structure(layer, signal.paths.get(previous), source_shape,
                   layers[-1] if layers else None, scale)
        layers.append(layer)
        previous, source_shape = name, signal.shape
    return layers


def _load(network, layers: list[_Layer]) -> None:
    """Copy the imported tensors into the built network."""
    with torch.no_grad():
        for module, layer in zip(network.layers, layers, strict=True):
            if layer.kernel is not None:
                module.parametrizations.weight.original.copy_(torch.from_numpy(layer.kernel))
            elif layer.pooled is not None:
                module.parametrizations.weight.original.copy_(torch.from_numpy(layer.pooled))
            elif hasattr(module, "parametrizations"):
                raise SpikeforgeError(f"NIR node {layer.name!r}: internal error, a structured "
                                      f"layer without its tensor")  # pragma: no cover
            else:
                module.weight.copy_(torch.from_numpy(layer.weight))
            if layer.recurrent is not None:
                module.recurrent_weight.copy_(torch.from_numpy(layer.recurrent))
            if layer.delay is not None:
                module.delay.copy_(torch.from_numpy(layer.delay))
            if layer.recurrent_delay is not None:
                module.recurrent_delay.copy_(torch.from_numpy(layer.recurrent_delay))
            if layer.log_taus is not None:
                module.log_tau_mem.copy_(torch.from_numpy(layer.log_taus[0]))
                module.log_tau_syn.copy_(torch.from_numpy(layer.log_taus[1]))


@dataclass
class ImportReport:
    """What an import made of each node: ``nodes`` maps a NIR node name to one line."""

    model: LoadedModel
    nodes: dict[str, str]
    spike_area: float


def import_graph(graph, dt: float | None = None, readout: str | None = None) -> ImportReport:
    """:func:`from_nir` with a line per NIR node saying what it became."""
    raw_nodes, raw_edges = inline_graph(graph)
    fused = [k for k, v in raw_nodes.items() if type(v).__name__ == "Threshold"]
    nodes, edges = _fuse_thresholds(raw_nodes, raw_edges)
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
    if not ours:
        _check_time_constants(nodes, dt)
    g = _Graph(nodes, edges, dt)
    chain = _chain(g, inputs[0], outputs[0])
    layers = _layers(g, chain, inputs[0], area, dt)
    n_inputs = g.signal_out(inputs[0]).units
    spec = NetworkSpec(n_inputs=int(n_inputs), layers=tuple(ly.spec for ly in layers), dt=dt)
    with warnings.catch_warnings():  # imported for inference: no EventProp needed
        warnings.filterwarnings("ignore", message=".*cannot learn with method='eventprop'")
        network = build_network(spec)
    _load(network, layers)
    network.eval()
    default = ("first_spike" if ours else "sum") if spec.layers[-1].neuron.spiking else "sum_exp"
    readout = readout or str(_meta(graph, "spikeforge.readout", default))
    if readout not in READOUTS:
        raise SpikeforgeError(f"unknown readout {readout!r}; choose one of {READOUTS}")
    report: dict[str, str] = {}
    for name, kind in ((k, type(v).__name__) for k, v in raw_nodes.items()):
        index = next((i for i, ly in enumerate(layers) if ly.name == name), None)
        if index is not None:
            layer = layers[index]
            report[name] = f"layer {index}: {layer.became}, {layer.spec.size} neurons"
        elif name in fused:
            report[name] = "Threshold: fused with its integrator into a spiking neuron"
        elif kind == "Input":
            report[name] = f"Input: {n_inputs} input channels"
        elif kind == "Output":
            report[name] = f"Output: readout {readout!r}"
        elif kind == "Delay":
            report[name] = f"Delay: per-synapse delays of the next layer (rounded to dt={dt:g} ms)"
        elif kind in ("Affine", "Conv2d") and _has_bias(raw_nodes[name]):
            report[name] = (f"{kind}: folded into the synapses of the next layer, its bias "
                            f"into that layer's constant input")
        else:
            report[name] = f"{kind}: folded into the synapses of the next layer"
    return ImportReport(LoadedModel(network, readout), report, area)


def from_nir(graph, dt: float | None = None, readout: str | None = None,
             writer: str | None = None) -> LoadedModel:
    """Build a spikeforge network from a NIR graph (see the module docstring).

    Args:
        graph: a :class:`nir.NIRGraph`.
        dt: time step in ms: the step the graph was written for (a spike is a pulse of
            one step) and spikeforge's simulation step. Default: the graph's
            ``spikeforge.dt_ms``, else 1.0 (snnTorch graphs need 0.1).
        readout: readout rule (default: the graph's ``spikeforge.readout``, else
            ``sum_exp`` for a non-spiking output and ``sum`` (spike counts) for a
            spiking one).
        writer: ``"norse"`` for graphs written by Norse's ``to_nir``, whose time
            constants and input weights need correcting first
            (:mod:`spikeforge.export.nir_writers`); default: none.
    """
    from spikeforge.export.nir_writers import correct_graph

    return import_graph(correct_graph(graph, writer, dt), dt, readout).model


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


def read_graph(path: Path):
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
        graph = _without_batch_dimension(nir, path) if "Type inference" in str(exc) else None
        if graph is None:
            raise SpikeforgeError(
                f"NIR file {path} is not a readable NIR graph ({type(exc).__name__}: {exc})"
            ) from exc
        return graph


def _without_batch_dimension(nir, path: Path):
    """The graph at ``path`` read without NIR's type inference, which Norse's ``to_nir``
    graphs fail (an ``Input`` shape with the sample batch's leading 1, scalar neuron
    parameters); a leading 1 of an ``Input`` shape is dropped. spikeforge checks the
    sizes of what it imports itself. None if the file cannot be read that way either."""
    try:
        graph = nir.read(path, type_check=False)
    except (ValueError, AssertionError, KeyError, TypeError):
        return None
    nodes = dict(graph.nodes)
    for name, node in graph.nodes.items():
        shape = np.asarray(_input_shape(node)).ravel() if type(node).__name__ == "Input" \
            else None
        if shape is not None and shape.size >= 2 and shape[0] == 1:
            nodes[name] = nir.Input(input_type=np.asarray(shape[1:]))
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False,
                        metadata=dict(getattr(graph, "metadata", None) or {}))


def read_nir(path: Path, dt: float | None = None, readout: str | None = None,
             writer: str | None = None) -> LoadedModel:
    """Read a NIR file into a spikeforge network (see :func:`from_nir`)."""
    return from_nir(read_graph(path), dt, readout, writer)
