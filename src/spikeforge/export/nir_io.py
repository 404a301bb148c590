"""NIR (Neuromorphic Intermediate Representation) export.

Parameter convention. NIR is continuous-time with times in **seconds**; its CubaLIF /
CubaLI nodes are::

    tau_syn dI/dt = -I + w_in S          (S: sum of Dirac input spikes)
    tau_mem dv/dt = (v_leak - v) + r I   (CubaLIF: v > v_threshold -> spike, v <- v_reset)

spikeforge's model (ALGORITHMS.md section 1, :mod:`spikeforge.model.neurons`) is the same
system with v_leak = v_reset = 0, r = 1 and a jump ``I += w`` per weighted spike, so we
write ``r = 1`` and ``w_in = tau_syn`` (a Dirac of area w then raises I by exactly w),
taus in seconds (``tau_ms / 1000``) and the weights in ``Linear`` nodes (``[out, in]``).
The importer (:mod:`spikeforge.export.nir_import`) reads these graphs back exactly.

spikeforge integrates exactly but on a time grid: spikes are detected at multiples of
dt and a spike emitted at step n reaches the next layer's current at the same step.
The grid step and readout rule are stored in the graph metadata
(``spikeforge.dt_ms``, ``spikeforge.readout``); other consumers discretise with their
own step. Graph layout::

    input -> fc0 (Linear) -> lif0 (CubaLIF) [-> rec0 (Linear) -> lif0] -> fc1 -> ...
          -> out (CubaLI, or CubaLIF for a spiking output) -> output
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.export.network_io import LoadedModel
from spikeforge.export.nir_import import from_nir, read_nir  # the importer, re-exported
from spikeforge.neurons import model_of
from spikeforge.nn import SpikingNetwork


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - nir is a core dependency
        raise SpikeforgeError("NIR export needs the nir package: pip install nir") from exc
    return nir


def _full(n: int, value: float) -> np.ndarray:
    return np.full(n, value, dtype=np.float64)


def to_nir(model: LoadedModel):
    """The :class:`nir.NIRGraph` of a spikeforge network (see module docstring)."""
    from spikeforge.export.capabilities import check_expressible

    check_expressible(model, "nir")
    nir = _nir()
    net: SpikingNetwork = model.network
    spec = net.spec
    nodes = {"input": nir.Input(input_type={"input": np.array([spec.n_inputs])})}
    edges: list[tuple[str, str]] = []
    previous = "input"
    for index, (layer, layer_spec) in enumerate(zip(net.layers, spec.layers, strict=True)):
        p, n = layer_spec.neuron, layer_spec.size
        last = index == len(spec.layers) - 1
        fc, neuron = f"fc{index}", ("out" if last else f"lif{index}")
        nodes[fc] = nir.Linear(weight=layer.weight.detach().cpu().numpy().copy())
        nodes[neuron] = model_of(p).nir_node(p, n, nir)  # the neuron model's own mapping
        edges += [(previous, fc), (fc, neuron)]
        rec = getattr(layer, "recurrent_weight", None)
        if rec is not None:
            nodes[f"rec{index}"] = nir.Linear(weight=rec.detach().cpu().numpy().copy())
            edges += [(neuron, f"rec{index}"), (f"rec{index}", neuron)]
        previous = neuron
    nodes["output"] = nir.Output(output_type={"output": np.array([spec.layers[-1].size])})
    edges.append((previous, "output"))
    metadata = {"spikeforge.dt_ms": float(spec.dt), "spikeforge.readout": model.readout,
                "source": "spikeforge"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(model: LoadedModel, path: Path) -> None:
    """Write the NIR graph of ``model`` to ``path`` (HDF5), atomically."""
    from spikeforge.atomic import atomic_path

    nir = _nir()
    with atomic_path(Path(path)) as tmp:
        nir.write(tmp, to_nir(model))

__all__ = ["from_nir", "read_nir", "to_nir", "write_nir"]
