"""Export to the Brian2 and NEST simulators: weights file, stand-alone script, live objects
and an agreement check against spikeforge (see ``templates/`` for the model code).
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from spikeforge.atomic import atomic_path
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.export.agreement import SimOutput
from spikeforge.export.capabilities import check_expressible
from spikeforge.export.network_io import LoadedModel

TARGETS = {"brian2": "brian2_model", "nest": "nest_model"}
_PACKAGES = {"brian2": "brian2", "nest": "nest"}


def template(target: str):
    """The stand-alone model module for ``target`` (imported from spikeforge.export)."""
    if target not in TARGETS:
        raise SpikeforgeError(f"unknown simulator {target!r}; choose one of {tuple(TARGETS)}")
    return importlib.import_module(f"spikeforge.export.templates.{TARGETS[target]}")


def _start_engine_threads() -> None:
    """Run a one-neuron spikeforge forward so the engine's OpenMP runtime starts first.

    NEST ships its own OpenMP runtime; if NEST is imported before numba's OpenMP threading
    layer has started, ``nest.ResetKernel`` crashes (segmentation fault, measured with
    NEST 3.10 + numba 0.68). Starting spikeforge's engine first avoids it.
    """
    from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
    from spikeforge.nn import build_network

    spec = NetworkSpec(1, (LayerSpec(1, LIFParams()), LayerSpec(1, LIFParams(spiking=False))))
    with torch.no_grad():
        build_network(spec)(Events.from_dense(np.ones((1, 2, 1), dtype=np.float32)))


def require(target: str) -> None:
    """Raise a clear error unless the simulator ``target`` can be imported."""
    module = template(target)
    if target == "nest" and "nest" not in sys.modules:
        _start_engine_threads()
    try:
        module.import_simulator()
    except ImportError as exc:
        raise SpikeforgeError(
            f"exporting to {target} needs the {_PACKAGES[target]} simulator: "
            f"pip install 'spikeforge[{target}]' ({exc})"
        ) from exc


def weights_dict(model: LoadedModel) -> dict[str, np.ndarray]:
    """Everything the stand-alone scripts need, as arrays (saved as ``weights.npz``)."""
    net, spec = model.network, model.network.spec
    out = {"dt_ms": np.float64(spec.dt), "n_inputs": np.int64(spec.n_inputs),
           "n_layers": np.int64(len(spec.layers))}
    for k, (layer, layer_spec) in enumerate(zip(net.layers, spec.layers, strict=True)):
        p = layer_spec.neuron
        out[f"w{k}"] = layer.weight.detach().double().numpy()
        rec = getattr(layer, "recurrent_weight", None)
        if rec is not None:
            out[f"rec{k}"] = rec.detach().double().numpy()
        if hasattr(layer, "clamped_delays"):  # per-synapse delays, [out, in] like weights
            out.update(_delay_arrays(layer, k, spec.dt))
        out[f"tau_mem{k}"] = np.float64(p.tau_mem)
        out[f"tau_syn{k}"] = np.float64(p.tau_syn)
        out[f"threshold{k}"] = np.float64(p.threshold)
        out[f"spiking{k}"] = np.bool_(p.spiking)
    return out


def _delay_arrays(layer, k: int, dt: float) -> dict[str, np.ndarray]:
    """Whole steps ``q`` and fraction ``f`` of every synapse delay (the spikeforge rule:
    a spike at step n injects (1 - f) w at step n + q and f w at step n + q + 1)."""
    from spikeforge.engine.delay_layers import DelaySteps

    out = {}
    d_in, d_rec = layer.clamped_delays()
    for prefix, delay in (("", d_in), ("r", d_rec)):
        if delay is None:
            continue
        steps = DelaySteps.from_ms(delay.detach().double().numpy().T, dt, layer.delay_mode,
                                   np.float64)
        out[f"{prefix}dq{k}"] = steps.q.T.astype(np.int64)
        out[f"{prefix}df{k}"] = steps.f.T.astype(np.float64)
    return out


def write_simulator_export(model: LoadedModel, target: str, out_dir: Path) -> list[Path]:
    """Write ``weights.npz`` and ``<target>_model.py`` into ``out_dir`` (each atomically)."""
    check_expressible(model, target)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = template(target)
    weights_path, script_path = out_dir / "weights.npz", out_dir / f"{TARGETS[target]}.py"
    with atomic_path(weights_path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **weights_dict(model))
    with atomic_path(script_path) as tmp:
        shutil.copyfile(module.__file__, tmp)
    return [weights_path, script_path]


def _inputs(events: Events) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if events.n_events:
        keys = (events.sample_index() * events.n_steps + events.step) * events.n_units
        keys = keys + events.unit
        if np.unique(keys).size != keys.size:
            raise SpikeforgeError(
                "input has several events of one channel in one time step, which simulator "
                "spike generators cannot express; use binary spike inputs"
            )
        if np.any(events.value != 1):
            raise SpikeforgeError(
                "input events with amplitudes other than 1 cannot be expressed as simulator "
                "spike generators; use binary spike inputs"
            )
    return events.ptr, events.step.astype(np.int64), events.unit.astype(np.int64)


def live_network(model: LoadedModel, target: str, events: Events):
    """The target simulator's live network for the samples in ``events``.

    Returns ``(network, monitors)``: a ``brian2.Network`` (call ``.run(n_steps * dt)``)
    or, for NEST, the kernel-resident node collections (call ``nest.Simulate``).
    """
    require(target)
    check_expressible(model, target)
    ptr, steps, units = _inputs(events)
    return template(target).build(weights_dict(model), ptr, steps, units, events.n_steps)


def simulate(model: LoadedModel, target: str, events: Events) -> SimOutput:
    """Simulate ``events`` in ``target``; spike counts per spiking layer and readout."""
    require(target)
    check_expressible(model, target)
    ptr, steps, units = _inputs(events)
    result = template(target).simulate(weights_dict(model), ptr, steps, units, events.n_steps)
    n_layers = len(model.network.spec.layers)
    counts = [result[f"counts{k}"] for k in range(n_layers) if f"counts{k}" in result]
    return SimOutput(counts=counts, readout=np.asarray(result["readout"], dtype=np.float64))
