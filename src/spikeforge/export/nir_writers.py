"""Corrections for NIR graphs whose writer records its parameters differently from the NIR
specification, applied before import (``import-nir --writer NAME``, ``from_nir(...,
writer=NAME)``).

**Norse** (checked against Norse 1.1.0, ``norse.torch.to_nir(module, sample, dt=...)``)
writes every time constant as ``dt / tau_inv`` (``tau_inv = 1 / tau``), i.e. ``dt · tau``
in seconds² instead of ``tau``: a 10 ms membrane at dt = 1 ms is stored as 1e-5. Its cells
step by forward Euler with the input given as one step of amplitude 1 (area ``dt``), and
two of them do not integrate their input the way NIR's equations with that area do:

* ``LIFCell`` -> ``CubaLIF``: an input spike adds its weight to the synaptic current at
  once (``i += W x``), where NIR's ``tau_syn dI/dt = -I + w_in W x`` with a pulse of area
  ``dt`` adds ``w_in W dt / tau_syn``: the written ``w_in`` is multiplied by
  ``tau_syn / dt``;
* ``IAFCell`` -> ``IF``: ``v += W x`` per step, where NIR's ``dv/dt = r W x`` adds
  ``r W dt``: the written ``r`` is divided by ``dt``;
* ``LIFBoxCell`` -> ``LIF`` and ``LIBoxCell`` -> ``LI`` add ``dt / tau · W x``, which is
  NIR's equation with area ``dt`` (only their ``tau`` needs correcting).

Affine biases follow the same rules (Norse adds a bias every step as it adds input), so no
separate bias correction is needed. ``dt`` is the step the graph was written with (the
``dt`` of Norse's ``to_nir``, 1 ms by default), which is also the import's ``--dt``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spikeforge.errors import SpikeforgeError

WRITERS = ("norse",)
"""Writers whose graphs :func:`correct_graph` knows how to correct."""


def _array(value) -> np.ndarray:
    """A recorded value (NumPy array or torch tensor) as float64 NumPy."""
    return np.asarray(value, dtype=np.float64)


def _norse_node(node, dt_s: float):
    """The node with Norse's recorded values turned into NIR's (module docstring)."""
    kind = type(node).__name__
    if kind in ("LIF", "LI"):
        return replace(node, tau=_array(node.tau) / dt_s)
    if kind == "CubaLIF":
        tau_syn = _array(node.tau_syn) / dt_s
        return replace(node, tau_mem=_array(node.tau_mem) / dt_s, tau_syn=tau_syn,
                       w_in=_array(node.w_in) * tau_syn / dt_s)
    if kind == "IF":
        return replace(node, r=_array(node.r) / dt_s)
    return node


def correct_graph(graph, writer: str | None, dt_ms: float | None):
    """``graph`` with the parameters ``writer`` recorded turned into NIR's meaning.

    Args:
        graph: a :class:`nir.NIRGraph` (nested sub-graphs are corrected too).
        writer: ``None`` (no correction) or one of :data:`WRITERS`.
        dt_ms: the time step the graph was written with, in ms (default 1.0).
    """
    if writer is None:
        return graph
    if writer not in WRITERS:
        raise SpikeforgeError(f"unknown NIR writer {writer!r}; choose one of {WRITERS} "
                              "(or none for graphs that follow the NIR specification)")
    dt = 1.0 if dt_ms is None else float(dt_ms)
    if not (dt > 0):
        raise SpikeforgeError(f"dt must be a positive number of ms, got {dt_ms!r}")
    return _corrected(graph, dt / 1e3)


def _corrected(graph, dt_s: float):
    import nir

    nodes = {name: (_corrected(node, dt_s) if isinstance(node, nir.NIRGraph)
                    else _norse_node(node, dt_s))
             for name, node in graph.nodes.items()}
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), type_check=False,
                        metadata=dict(getattr(graph, "metadata", None) or {}))
