"""Cross-check an exported NIR graph with another NIR consumer (snnTorch's importer).

snnTorch (``snntorch.import_nir``) maps CubaLIF to its discrete ``Synaptic`` neuron with a
fixed step ``dt_c = 1e-4 s`` and forward-Euler factors ``alpha = 1 - dt_c/tau_syn``,
``beta = 1 - dt_c/tau_mem``; it requires ``r = tau_mem/dt_c`` and reads each input
spike as adding its weight to the current once (spikes per step, not Dirac areas). It
has no CubaLI node. To hand it our network we therefore give it the graph with
``r = tau_mem/dt_c``, ``w_in = tau_syn/tau_mem`` (snnTorch then scales the threshold by
``1/w_scale = tau_mem/dt_c``, the factor its voltage carries relative to ours) and the
readout as a CubaLIF with an unreachable threshold; we feed it our inputs on its 0.1 ms
grid (one event in the first sub-step of each spikeforge step) and read its readout
voltage at the end of each spikeforge step. Differences come from Euler vs exact
integration, threshold checks every 0.1 ms instead of every dt, and zero input delay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikeforge.export import agreement
from spikeforge.export.network_io import LoadedModel

SNNTORCH_DT = 1e-4  # seconds, hard-wired in snntorch.import_nir


def snntorch_graph(graph):
    """An equivalent graph in snnTorch's CubaLIF convention (see module docstring)."""
    import nir

    nodes = dict(graph.nodes)
    for key, node in graph.nodes.items():
        if isinstance(node, nir.CubaLIF | nir.CubaLI):
            thr = (node.v_threshold if isinstance(node, nir.CubaLIF)
                   else np.full_like(node.tau_mem, 1e12))
            nodes[key] = nir.CubaLIF(
                tau_syn=node.tau_syn, tau_mem=node.tau_mem, r=node.tau_mem / SNNTORCH_DT,
                v_leak=node.v_leak, v_threshold=thr, v_reset=np.zeros_like(thr),
                w_in=node.r * node.w_in / node.tau_mem,
            )  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata))


def snntorch_simulate(graph, events, dt_ms: float) -> agreement.SimOutput:
    """Run ``events`` through snnTorch's import of ``graph`` (in snnTorch's convention)."""
    import contextlib
    import io

    import nir
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # its importer prints warnings
        net = import_from_nir(graph)
    sub = int(round(dt_ms * 1e-3 / SNNTORCH_DT))
    neuron_names = [k for k, v in graph.nodes.items() if isinstance(v, nir.CubaLIF)]
    modules = dict(net.named_modules())
    readout_name = [a for a, b in graph.edges if b == "output"][0]
    hidden = [n for n in neuron_names if n != readout_name]
    spikes = {name: [] for name in hidden}
    hooks = [modules[name].register_forward_hook(
        lambda mod, inp, out, name=name: spikes[name].append(
            (out[0] if isinstance(out, tuple) else out).detach().clone()))
        for name in hidden]  # fmt: skip
    x = torch.from_numpy(events.to_dense(np.float32))  # [B, T, in]
    for module in modules.values():
        if hasattr(module, "mem"):
            module.mem, module.syn = torch.zeros(0), torch.zeros(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny per-step matmuls: threading only adds contention
    try:
        readout = _run(net, modules, readout_name, graph, x, events.n_steps, sub)
    finally:
        torch.set_num_threads(threads)
    for hook in hooks:
        hook.remove()
    counts = [torch.stack(spikes[name]).sum(dim=0).long().numpy() for name in hidden]
    return agreement.SimOutput(counts=counts, readout=np.stack(readout, axis=1))


@torch.no_grad()
def _run(net, modules, readout_name, graph, x, n_steps: int, sub: int) -> list[np.ndarray]:
    """Step snnTorch's network ``sub`` times per spikeforge step; readout at step ends."""
    scale = float(np.unique(graph.nodes[readout_name].tau_mem)[0] / SNNTORCH_DT)
    readout = []
    for n in range(n_steps):
        for s in range(sub):
            net(x[:, n] if s == 0 else torch.zeros_like(x[:, n]))
        readout.append(modules[readout_name].mem.detach().double().numpy() / scale)
    return readout


def snntorch_check(model: LoadedModel, path: Path, max_samples: int | None) -> dict | None:
    """Agreement of snnTorch's import of the NIR file at ``path``; None if not installed."""
    try:
        import snntorch  # noqa: F401
    except ImportError:
        return None
    import nir

    spec = model.network.spec
    if spec.layers[-1].neuron.spiking:
        return None  # snnTorch's output spikes would need a spike-time readout; skip
    if any(layer.recurrent for layer in spec.layers):
        return None  # snnTorch wraps a recurrent loop in a sub-graph (not steppable here)
    from spikeforge.neurons import LIFParams

    if any(type(layer.neuron) is not LIFParams or layer.conv is not None
           or layer.delays is not None for layer in spec.layers):
        return None  # the conversion above covers dense CubaLIF / CubaLI layers only
    graph = snntorch_graph(nir.read(path))
    dt = model.network.spec.dt
    return agreement.check(model, model.splits.test,
                           lambda events: snntorch_simulate(graph, events, dt),
                           "nir -> snntorch (Euler, 0.1 ms)", max_samples)
