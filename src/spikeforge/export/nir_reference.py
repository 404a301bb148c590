"""A reference simulator of NIR graphs: NIR's continuous-time equations on a fine time grid.

It reads a :class:`nir.NIRGraph` directly (it shares no parameter mapping with the
importer, :mod:`spikeforge.export.nir_import`, which tests compare against it) and runs
NIR's equations in seconds::

    CubaLIF / CubaLI   tau_syn I' = -I + w_in x,    tau_mem v' = (v_leak - v) + r I
    LIF / LI           tau v' = (v_leak - v) + r x
    IF / I             v' = r x
    spiking nodes      v > v_threshold -> emit a spike, v <- v_reset
    Linear / Affine / Scale / Flatten / Conv2d / SumPool2d / AvgPool2d   (linear maps)
    Delay              y(t) = x(t - delay)
    Threshold          z = H(v - threshold)   (see below)

where ``x`` is a node's input. A spike is a Dirac pulse of area ``spike_area`` seconds
(1 in NIR's own reading; ``dt`` for graphs written by libraries that feed a spike as one
step of amplitude 1, see :mod:`spikeforge.export.nir_import`). A non-spiking node's output
is its voltage ``v`` (a continuous signal), ``Affine`` biases are constant signals.

**Time grid.** Between fine steps of length ``h = dt / substeps`` the linear dynamics are
integrated exactly with the input signals held constant; pulses are instantaneous jumps
(``I += w_in a / tau_syn``, ``v += r a / tau`` or ``v += r a``). Thresholds are checked at
every fine step (``threshold_on_grid=True``: only at multiples of ``dt``, which is what a
time-stepped simulator such as spikeforge does; the results then agree with spikeforge to
rounding, a check of the parameter mapping rather than of the time discretisation).
Delays are rounded to whole fine steps. Every state starts at 0.

**Input and output timing.** Input spikes are given per step of ``dt`` ms,
``[batch, steps, inputs]``; the spikes of step n are pulses at ``t = (n + 1) dt``, and
the readout of step n is the output node's voltage just before those pulses (for a
spiking output: its spikes in ``(n dt, (n + 1) dt]``). That is spikeforge's step
convention (its step n integrates over ``(n dt, (n + 1) dt]`` and then adds step n's
input), so both simulate the same continuous-time problem.

**Threshold.** NIR's ``Threshold`` is a Heaviside without state. A ``Threshold`` fed
only by an integrator ``I`` (which feeds nothing else) is read as NIR's IF neuron, the
composition integrator + threshold + reset: the pair emits a spike when ``v`` exceeds
the threshold and resets ``v`` to 0 (``threshold_reset=True``, the reading the importer
uses). Otherwise, or with ``threshold_reset=False``, the output is the level
``H(x - threshold)`` of its continuous input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from spikeforge.errors import SpikeforgeError

SPIKING = ("CubaLIF", "LIF", "IF")
VOLTAGE = ("CubaLI", "LI", "I")
NEURONS = SPIKING + VOLTAGE
LINEAR = ("Linear", "Affine", "Scale", "Flatten", "Conv2d", "SumPool2d", "AvgPool2d",
          "Delay", "Threshold")

DENSE_LIMIT = 20_000_000
"""Conv and pooling nodes with at most this many (input x output units) run as a dense
matrix (built once with torch); larger ones call torch every fine step."""


@dataclass
class ReferenceOutput:
    """What the reference simulator produced for B samples.

    counts: spike counts ``[B, units]`` of every spiking node, by node name (in the
        graph's node order: for a chain, layer order).
    readout: ``[B, steps, C]``: the voltage of the node feeding the ``Output`` at each
        step end (its spike count per step for a spiking node).
    first_spike_s: for a spiking output, the first spike time (s) of each output unit,
        ``inf`` where it never fired (``[B, C]``); None otherwise.
    """

    counts: dict[str, np.ndarray]
    readout: np.ndarray
    first_spike_s: np.ndarray | None = None


@dataclass
class _Neuron:
    kind: str
    shape: tuple[int, ...]
    p: dict[str, np.ndarray]
    spiking: bool
    v: np.ndarray = field(default=None)  # type: ignore[assignment]
    i: np.ndarray = field(default=None)  # type: ignore[assignment]
    level: np.ndarray = field(default=None)  # type: ignore[assignment]
    a: np.ndarray | float = 0.0


def _arr(node, name: str, shape: tuple[int, ...], default: float) -> np.ndarray:
    value = getattr(node, name, None)
    if value is None:
        return np.full(math.prod(shape), default)
    value = np.asarray(value, dtype=np.float64)
    if value.size == 1:
        return np.full(math.prod(shape), float(value.ravel()[0]))
    if value.size != math.prod(shape):
        raise SpikeforgeError(f"reference simulator: {name} has {value.size} values for a "
                              f"node of {math.prod(shape)} units")
    return value.reshape(-1).copy()


def _pair(value) -> tuple[int, int]:
    v = np.asarray(value).ravel().astype(int)
    return (int(v[0]), int(v[0])) if v.size == 1 else (int(v[0]), int(v[1]))


class _Sim:
    def __init__(self, graph, n_batch: int, h: float, threshold_reset: bool) -> None:
        from spikeforge.export.nir_import import inline_graph  # graph flattening only

        self.nodes, edges = inline_graph(graph)
        self.preds: dict[str, list[str]] = {k: [] for k in self.nodes}
        self.succs: dict[str, list[str]] = {k: [] for k in self.nodes}
        for a, b in edges:
            self.preds[b].append(a)
            self.succs[a].append(b)
        self.h, self.B = h, n_batch
        self.kind = {k: type(v).__name__ for k, v in self.nodes.items()}
        for name, kind in self.kind.items():
            if kind not in ("Input", "Output", *NEURONS, *LINEAR):
                raise SpikeforgeError(f"reference simulator: node {name!r} has type {kind}, "
                                      f"which it does not simulate")
        inputs = [k for k, v in self.kind.items() if v == "Input"]
        outputs = [k for k, v in self.kind.items() if v == "Output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise SpikeforgeError("reference simulator: the graph needs one Input and one "
                                  "Output")
        self.input, self.output = inputs[0], outputs[0]
        node = self.nodes[self.input]
        types = node.input_type if isinstance(node.input_type, dict) else {"i": node.input_type}
        shape = tuple(int(s) for s in np.asarray(next(iter(types.values()))).ravel())
        self.input_shape = shape or (1,)
        # I -> Threshold pairs read as IF neurons (module docstring)
        self.fused: dict[str, str] = {}
        if threshold_reset:
            for name, kind in self.kind.items():
                if kind != "Threshold" or len(self.preds[name]) != 1:
                    continue
                pred = self.preds[name][0]
                if self.kind[pred] == "I" and self.succs[pred] == [name]:
                    self.fused[name] = pred
        self.order = self._topological()
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.neurons: dict[str, _Neuron] = {}
        self.delay_steps: dict[str, np.ndarray] = {}
        self.buffers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._weights: dict[str, np.ndarray] = {}
        self._zero: dict[str, np.ndarray] = {}
        self._biases: dict[str, np.ndarray | None] = {}
        self._setup()
        self.sources = [k for k in self.nodes if self._is_source(k)]

    # -- structure -------------------------------------------------------------------------

    def _is_source(self, name: str) -> bool:
        """Nodes whose output at a step depends only on state (cuts recurrent loops)."""
        return self.kind[name] in ("Input", *NEURONS) or name in self.fused

    def _topological(self) -> list[str]:
        """Non-source nodes ordered so that every node comes after its non-source inputs."""
        order, done, busy = [], set(), set()

        def visit(name: str) -> None:
            if name in done or self._is_source(name):
                return
            if name in busy:
                raise SpikeforgeError(f"reference simulator: node {name!r} is on a loop "
                                      f"without a neuron node")
            busy.add(name)
            for pred in self.preds[name]:
                visit(pred)
            busy.discard(name)
            done.add(name)
            order.append(name)

        for name in self.nodes:
            visit(name)
        return order

    def _shape_of(self, name: str) -> tuple[int, ...]:
        if name in self.shapes:
            return self.shapes[name]
        kind = self.kind[name]
        node = self.nodes[name]
        if kind == "Input":
            shape = self.input_shape
        elif name in self.fused:
            shape = self._shape_of(self.fused[name])
        elif kind in NEURONS:
            self.shapes[name] = (0,)  # recursion guard for loops through this node
            sizes = [np.asarray(getattr(node, f)).shape for f in
                     ("tau_mem", "tau", "r", "v_threshold") if getattr(node, f, None) is not None]
            big = max(sizes, key=lambda s: math.prod(s))
            fed = [self._shape_of(p) for p in self.preds[name]
                   if self._shape_of(p) != (0,)]
            shape = fed[0] if fed else tuple(big)
            if len(big) > 1 and math.prod(big) == math.prod(shape):
                shape = tuple(big)
        else:
            ins = [self._shape_of(p) for p in self.preds[name]]
            ins = [s for s in ins if s != (0,)] or [(0,)]
            shape = self._out_shape(name, node, ins[0])
        self.shapes[name] = shape
        return shape

    def _out_shape(self, name: str, node, shape: tuple[int, ...]) -> tuple[int, ...]:
        kind = self.kind[name]
        if kind in ("Linear", "Affine"):
            return (int(np.asarray(node.weight).shape[0]),)
        if kind == "Flatten":
            return (math.prod(shape),) if len(shape) > 0 else shape
        if kind in ("Conv2d", "SumPool2d", "AvgPool2d"):
            probe = torch.zeros(1, *self._image(name, node, shape), dtype=torch.float64)
            return tuple(self._linear_map(name, node, probe).shape[1:])
        return shape

    def _image(self, name, node, shape):
        if len(shape) == 3:
            return shape
        hw = getattr(node, "input_shape", None)
        if hw is not None and getattr(node, "weight", None) is not None:
            c = int(np.asarray(node.weight).shape[1])
            h, w = _pair(hw)
            if c * h * w == math.prod(shape):
                return (c, h, w)
        raise SpikeforgeError(f"reference simulator: node {name!r} needs an image input")

    def _setup(self) -> None:
        for name in self.nodes:
            self._shape_of(name)
        for name, kind in self.kind.items():
            node = self.nodes[name]
            shape = self.shapes[name]
            if kind in NEURONS:
                n = math.prod(shape)
                p = {f: _arr(node, f, shape, d) for f, d in (
                    ("tau_syn", 1.0), ("tau_mem", 1.0), ("tau", 1.0), ("r", 1.0),
                    ("w_in", 1.0), ("v_leak", 0.0), ("v_threshold", math.inf),
                    ("v_reset", 0.0))}  # fmt: skip
                spiking = kind in SPIKING
                fused_by = [t for t, i in self.fused.items() if i == name]
                if fused_by:
                    spiking = True
                    thr = self.nodes[fused_by[0]].threshold
                    p["v_threshold"] = _arr(SimpleThreshold(thr), "v_threshold", shape, 0.0)
                    p["v_reset"] = np.zeros(n)
                adapt = _alif_extension(node)
                if adapt is not None:
                    p["tau_adapt"], p["beta"] = np.full(n, adapt[0]), np.full(n, adapt[1])
                self.neurons[name] = _Neuron(kind, shape, p, spiking,
                                             np.zeros((self.B, n)), np.zeros((self.B, n)),
                                             np.zeros((self.B, n)))
            elif kind == "Delay":
                n = math.prod(shape)
                steps = np.rint(_arr(node, "delay", shape, 0.0) / self.h).astype(np.int64)
                if np.any(steps < 0):
                    raise SpikeforgeError(f"reference simulator: node {name!r} has a "
                                          f"negative delay")
                self.delay_steps[name] = steps
                depth = int(steps.max(initial=0)) + 1
                self.buffers[name] = (np.zeros((depth, self.B, n)), np.zeros((depth, self.B, n)))

    # -- linear maps -----------------------------------------------------------------------

    def _linear_map(self, name: str, node, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, *shape] through the linear part of node ``name`` (no bias)."""
        kind = self.kind[name]
        if kind in ("Linear", "Affine"):
            w = torch.as_tensor(np.asarray(node.weight, dtype=np.float64))
            return x.reshape(x.shape[0], -1) @ w.T
        if kind == "Scale":
            s = torch.as_tensor(np.asarray(node.scale, dtype=np.float64)).reshape(-1)
            return (x.reshape(x.shape[0], -1) * s).reshape(x.shape)
        if kind == "Flatten":
            return x.reshape(x.shape[0], -1)
        if kind == "Conv2d":
            w = torch.as_tensor(np.asarray(node.weight, dtype=np.float64))
            padding = node.padding if isinstance(node.padding, str) else _pair(node.padding)
            return F.conv2d(x, w, stride=_pair(node.stride), padding=padding,
                            dilation=_pair(node.dilation), groups=int(node.groups))
        kernel, stride = _pair(node.kernel_size), _pair(node.stride)
        pooled = F.avg_pool2d(x, kernel, stride, _pair(node.padding), count_include_pad=True)
        return pooled * (kernel[0] * kernel[1] if kind == "SumPool2d" else 1.0)

    def _bias(self, name: str) -> np.ndarray | None:
        if name not in self._biases:
            self._biases[name] = self._node_bias(name)
        return self._biases[name]

    def _node_bias(self, name: str) -> np.ndarray | None:
        node, kind = self.nodes[name], self.kind[name]
        if kind == "Affine":
            return np.asarray(node.bias, dtype=np.float64).reshape(-1)
        if kind == "Conv2d":
            c, h, w = self.shapes[name]
            return np.repeat(np.broadcast_to(np.asarray(node.bias, dtype=np.float64).ravel(),
                                             (c,)), h * w)
        return None

    def _apply(self, name: str, x: np.ndarray) -> np.ndarray:
        """[B, units_in] -> [B, units_out] through node ``name``'s linear map."""
        kind = self.kind[name]
        if kind == "Flatten":
            return x
        n_out = math.prod(self.shapes[name])
        if not x.any():
            return np.zeros((x.shape[0], n_out))
        if kind in ("Linear", "Affine", "Scale"):  # NumPy: tiny products, no thread pool
            if name not in self._weights:
                node = self.nodes[name]
                self._weights[name] = (np.asarray(node.weight, dtype=np.float64).T
                                       if kind != "Scale" else
                                       np.asarray(node.scale, dtype=np.float64).reshape(-1))
            w = self._weights[name]
            return x @ w if kind != "Scale" else x * w
        shape = self._image(name, self.nodes[name], self.shapes[self.preds[name][0]])
        n_in = math.prod(shape)
        if n_in * n_out <= DENSE_LIMIT:  # conv / pooling as a matrix, built once by torch
            if name not in self._weights:
                basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *shape)
                self._weights[name] = self._linear_map(name, self.nodes[name], basis).reshape(
                    n_in, -1).numpy()
            return x @ self._weights[name]
        out = self._linear_map(name, self.nodes[name],
                               torch.from_numpy(x).reshape(x.shape[0], *shape))
        return out.reshape(x.shape[0], -1).numpy()

    # -- one fine step ---------------------------------------------------------------------

    def integrate(self) -> None:
        h = self.h
        for nrn in self.neurons.values():
            p, c = nrn.p, nrn.level
            if "beta" in p:
                nrn.a = nrn.a * np.exp(-h / p["tau_adapt"])
            if nrn.kind in ("CubaLIF", "CubaLI"):
                tm, ts, r = p["tau_mem"], p["tau_syn"], p["r"]
                am, as_ = np.exp(-h / tm), np.exp(-h / ts)
                diff = ts - tm
                equal = np.abs(diff) < 1e-9 * tm
                gain = np.where(equal, h / tm * am,
                                ts / np.where(equal, 1.0, diff) * (as_ - am))
                i_star = p["w_in"] * c
                v_star = p["v_leak"] + r * i_star
                nrn.v = v_star + am * (nrn.v - v_star) + gain * r * (nrn.i - i_star)
                nrn.i = i_star + as_ * (nrn.i - i_star)
            elif nrn.kind in ("LIF", "LI"):
                am = np.exp(-h / p["tau"])
                v_star = p["v_leak"] + p["r"] * c
                nrn.v = v_star + am * (nrn.v - v_star)
            else:
                nrn.v = nrn.v + p["r"] * c * h

    def fire(self) -> dict[str, np.ndarray]:
        spikes = {}
        for name, nrn in self.neurons.items():
            if not nrn.spiking:
                continue
            adaptive = "beta" in nrn.p
            threshold = nrn.p["v_threshold"] + (nrn.p["beta"] * nrn.a if adaptive else 0.0)
            s = nrn.v > threshold
            nrn.v = np.where(s, nrn.p["v_reset"], nrn.v)
            if adaptive:
                nrn.a = nrn.a + s
            spikes[name] = s.astype(np.float64)
        return spikes

    def _zeros(self, name: str) -> np.ndarray:
        """A shared all-zero signal of node ``name`` (never written to)."""
        if name not in self._zero:
            self._zero[name] = np.zeros((self.B, math.prod(self.shapes[name])))
        return self._zero[name]

    @staticmethod
    def _total(outs: dict[str, np.ndarray], preds: list[str], empty: np.ndarray) -> np.ndarray:
        """Sum of the predecessors' signals (not copied when there is one)."""
        if not preds:
            return empty
        total = outs[preds[0]]
        for p in preds[1:]:
            total = total + outs[p]
        return total

    def propagate(self, pulses: dict[str, np.ndarray], area: float, m: int) -> None:
        """Send the sources' pulses (spike indicators x area) and levels through the
        linear nodes; pulses jump the neuron states, levels drive the next fine step."""
        pulse_out: dict[str, np.ndarray] = {}
        level_out: dict[str, np.ndarray] = {}
        for name in self.sources:
            src = self.fused.get(name) or name
            nrn = self.neurons.get(src)
            if name in pulses or src in pulses:
                pulse_out[name] = pulses.get(name, pulses.get(src)) * area
            else:
                pulse_out[name] = self._zeros(name)
            level_out[name] = (nrn.v if nrn is not None and not nrn.spiking
                               else self._zeros(name))
        for name in self.order:
            kind = self.kind[name]
            if kind == "Output":
                continue
            preds = self.preds[name]
            pulse = self._total(pulse_out, preds, self._zeros(name))
            level = self._total(level_out, preds, self._zeros(name))
            if kind == "Delay":
                steps = self.delay_steps[name]
                buf_p, buf_l = self.buffers[name]
                depth = buf_p.shape[0]
                if steps.min() == steps.max():  # one delay for every channel
                    slot = (m + int(steps[0])) % depth
                    buf_p[slot] += pulse
                    buf_l[slot] = level
                else:
                    cols = np.arange(steps.size)
                    buf_p[(m + steps) % depth, :, cols] += pulse.T
                    buf_l[(m + steps) % depth, :, cols] = level.T
                pulse_out[name] = buf_p[m % depth].copy()
                level_out[name] = buf_l[m % depth].copy()
                buf_p[m % depth] = 0.0
                continue
            if kind == "Threshold":
                if np.any(pulse):
                    raise SpikeforgeError(f"reference simulator: Threshold node {name!r} "
                                          f"receives spikes; it thresholds continuous "
                                          f"signals only")
                thr = _arr(SimpleThreshold(self.nodes[name].threshold), "v_threshold",
                           self.shapes[name], 0.0)
                pulse_out[name] = self._zeros(name)
                level_out[name] = (level > thr).astype(np.float64)
                continue
            pulse_out[name] = self._apply(name, pulse)
            bias = self._bias(name)
            level_out[name] = self._apply(name, level) + (0.0 if bias is None else bias)
        for name, nrn in self.neurons.items():
            preds = self.preds[name]
            pulse = self._total(pulse_out, preds, self._zeros(name))
            nrn.level = self._total(level_out, preds, self._zeros(name))
            p = nrn.p
            if nrn.kind in ("CubaLIF", "CubaLI"):
                nrn.i = nrn.i + p["w_in"] * pulse / p["tau_syn"]
            elif nrn.kind in ("LIF", "LI"):
                nrn.v = nrn.v + p["r"] * pulse / p["tau"]
            else:
                nrn.v = nrn.v + p["r"] * pulse


def _alif_extension(node) -> tuple[float, float] | None:
    """(tau_adapt in s, beta) of a CubaLIF carrying spikeforge's ALIF extension
    (:mod:`spikeforge.export.nir_io`), else None."""
    import json

    raw = (getattr(node, "metadata", None) or {}).get("spikeforge.neuron")
    raw = raw.decode() if isinstance(raw, bytes) else raw
    if type(node).__name__ != "CubaLIF" or not isinstance(raw, str):
        return None
    data = json.loads(raw)
    if data.get("model") != "alif":
        return None
    return float(data["tau_adapt"]) / 1e3, float(data["beta"])


@dataclass
class SimpleThreshold:
    """A stand-in exposing a Threshold node's values under the neuron field name."""

    v_threshold: np.ndarray


def _meta_source(graph) -> str:
    value = graph.metadata.get("source", "") if isinstance(graph.metadata, dict) else ""
    return value.decode() if isinstance(value, bytes) else str(value)


def simulate(graph, spikes: np.ndarray, dt_ms: float, substeps: int = 20,
             spike_area: float | None = None, threshold_on_grid: bool = False,
             threshold_reset: bool = True) -> ReferenceOutput:
    """Simulate ``graph`` on input ``spikes`` (module docstring).

    Args:
        graph: a :class:`nir.NIRGraph` with one ``Input`` and one ``Output``.
        spikes: input spike counts per step, ``[batch, steps, inputs]`` (inputs: the
            ``Input`` node's units, C-major for an image).
        dt_ms: the input and readout step in ms.
        substeps: fine steps per ``dt`` (>= 1).
        spike_area: area of every spike pulse in s. Default: 1 for a graph spikeforge
            wrote (metadata ``source: spikeforge``), else ``dt_ms / 1000``.
        threshold_on_grid: check thresholds only at multiples of ``dt``.
        threshold_reset: read ``I -> Threshold`` as NIR's IF neuron (module docstring).
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    if spikes.ndim != 3:
        raise SpikeforgeError("reference simulator: spikes must be [batch, steps, inputs]")
    if substeps < 1 or not dt_ms > 0:
        raise SpikeforgeError("reference simulator: substeps >= 1 and dt_ms > 0 needed")
    n_batch, n_steps, n_in = spikes.shape
    sim = _Sim(graph, n_batch, dt_ms / 1e3 / substeps, threshold_reset)
    if n_in != math.prod(sim.input_shape):
        raise SpikeforgeError(f"reference simulator: the Input node has "
                              f"{math.prod(sim.input_shape)} units, the spikes {n_in}")
    area = spike_area if spike_area is not None else (
        1.0 if _meta_source(graph) == "spikeforge" else dt_ms / 1e3)
    readout_src = sim.preds[sim.output][0]
    readout_src = sim.fused.get(readout_src, readout_src)
    out_nrn = sim.neurons.get(readout_src)
    if out_nrn is None:
        raise SpikeforgeError("reference simulator: the Output must read a neuron node")
    counts = {name: np.zeros((n_batch, math.prod(nrn.shape)))
              for name, nrn in sim.neurons.items() if nrn.spiking}
    n_out = math.prod(out_nrn.shape)
    readout = np.zeros((n_batch, n_steps, n_out))
    first = np.full((n_batch, n_out), np.inf) if out_nrn.spiking else None
    sim.propagate({}, area, 0)
    for m in range(1, n_steps * substeps + 1):
        sim.integrate()
        on_grid = m % substeps == 0
        fired = sim.fire() if (on_grid or not threshold_on_grid) else {}
        n = (m - 1) // substeps
        for name, s in fired.items():
            counts[name] += s
        if out_nrn.spiking and readout_src in fired:
            readout[:, n] += fired[readout_src]
            first = np.where((fired[readout_src] > 0) & np.isinf(first), m * sim.h, first)
        elif on_grid and not out_nrn.spiking:
            readout[:, n] = out_nrn.v
        pulses = dict(fired)
        if on_grid:
            pulses[sim.input] = spikes[:, n]
        sim.propagate(pulses, area, m)
    return ReferenceOutput(counts=counts, readout=readout, first_spike_s=first)
