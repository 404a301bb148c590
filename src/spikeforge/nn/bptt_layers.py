"""Glue between spikeforge layers and the BPTT loops of :mod:`spikeforge.nn.bptt`.

A layer built with ``method="bptt"`` computes all input currents ``[B, T, out]`` at once
and runs the differentiable loop. Sparse event input (data, not another layer) goes
through one sparse-dense product (a CSR matrix ``[B*T, in]`` of the events times the
weights, :func:`event_currents`), which costs O(events x out) instead of the
O(B x T x in x out) of a dense GEMM (on SHD with 10 delay lines, ~1 M events per batch of
32 against 224 M dense entries); dense input goes through one GEMM. Its output is a dense
tensor ``[B, T, out]`` carrying autograd history; the spikes are also stored as a
:class:`SpikeRecord` in ``layer.last_record`` (for rates, rasters, energy counts) but
not attached to the output, so consumers treat it as an ordinary dense tensor.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from spikeforge.engine import dense_loop
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.nn.bptt import (
    DEFAULT_SLOPE,
    DEFAULT_SURROGATE,
    check_surrogate,
    surrogate_spike,
)
from spikeforge.nn.records import SpikeRecord, record_of
from spikeforge.nn.time_constants import setup_time_constants, torch_table

METHODS = ("eventprop", "bptt")


def configure_method(layer: nn.Module, method: str, surrogate: str, slope: float,
                     tau_spread: float, train_tau: bool) -> None:
    """Validate and store the training method and time-constant options of ``layer``."""
    name = type(layer).__name__
    if method not in METHODS:
        raise SpikeforgeError(
            f"{name}: unknown training method {method!r}; choose one of {', '.join(METHODS)}"
        )
    check_surrogate(surrogate, slope, name)
    if train_tau and method != "bptt":
        raise SpikeforgeError(
            f"{name}: trainable taus need train.method=bptt (EventProp has no gradient "
            f"for time constants); set method='bptt' or train_tau=False"
        )
    layer.method, layer.surrogate, layer.surrogate_slope = method, surrogate, float(slope)
    setup_time_constants(layer, layer.params, layer.out_features, tau_spread, train_tau,
                         layer.dt, name)


def event_currents(events: Events, weight: torch.Tensor) -> torch.Tensor:
    """Input currents ``[B, T, out]`` of sparse input events through ``weight``
    ``[out, in]``: one CSR ``[B*T, in]`` x dense product (autograd gives the weight
    gradient as the transposed product, O(events x out) both ways). The events are sorted
    by (sample, step), so their rows b*T + step are already in CSR order. Runs in
    ``weight.dtype`` also under ``torch.autocast``."""
    n_rows = events.n_batch * events.n_steps
    rows = events.sample_index() * events.n_steps + events.step
    crow = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=crow[1:])
    device, dtype = weight.device, weight.dtype
    with warnings.catch_warnings():  # torch marks CSR tensors as beta on creation
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_csr_tensor(
            torch.from_numpy(crow).to(device),
            torch.from_numpy(events.unit.astype(np.int64)).to(device),
            torch.from_numpy(events.value).to(device=device, dtype=dtype),
            (n_rows, events.n_units), check_invariants=False,
        )  # fmt: skip
    # under autocast the product stays in the weight's dtype: it is a sum of weights (no
    # GEMM to speed up), and torch's CPU CSR kernels have no half-precision version
    with torch.autocast(device_type=device.type, enabled=False):
        out = matrix @ weight.t()
    return out.reshape(events.n_batch, events.n_steps, weight.shape[0])


def input_currents(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """All input currents ``[B, T, out]`` of ``layer``: sparse for event input, one GEMM
    (in the weight's dtype and device) for a dense tensor."""
    weight = layer.weight
    record = record_of(x)
    if record is not None and x.numel() == 0:
        if record.from_layer:
            raise SpikeforgeError(
                f"{type(layer).__name__}: method='bptt' cannot take the sparse output of an "
                f"EventProp layer; build every layer with the same method"
            )
        return event_currents(record.events, weight)
    return x.to(device=weight.device, dtype=weight.dtype) @ weight.t()


def bptt_loop(model, table: torch.Tensor, currents: torch.Tensor,
              w_rec: torch.Tensor | None, spiking: bool = True,
              surrogate: str = DEFAULT_SURROGATE, slope: float = DEFAULT_SLOPE,
              detach_reset: bool = True, spike_fn=None) -> torch.Tensor:
    """Differentiable time loop of any neuron model: input currents ``[B, T, N]`` ->
    spikes (or, for a readout, V) ``[B, T, N]``.

    Args:
        model, table: the neuron model and its factor table ``[K, N]`` (a tensor; with
            trainable taus it carries their gradient).
        w_rec: recurrent weights ``[N, N]`` (post, pre) or None.
        surrogate, slope: surrogate derivative of the Heaviside spike.
        detach_reset: stop the gradient through the reset (common practice, Zenke &
            Vogels 2021); the forward is the same either way.
        spike_fn: replaces the surrogate spike function (tests use a smooth one).
    """
    spike = spike_fn or (lambda margin: surrogate_spike(margin, surrogate, slope))
    run = dense_loop.simulate(
        model, table, currents, None if w_rec is None else w_rec.t(), spiking,
        spike_fn=spike, detach=(lambda s: s.detach()) if detach_reset else None,
        record_values=False,
    )  # fmt: skip
    return run.out


def layer_bptt(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward of a spikeforge layer with dense synapses by the BPTT loop: spikes (or V
    for a readout) ``[B, T, out]``."""
    table = torch_table(layer, layer.params, layer.out_features, layer.dt, layer.weight)
    out = bptt_loop(layer.model, table, input_currents(layer, x),
                    getattr(layer, "recurrent_weight", None), layer.params.spiking,
                    layer.surrogate, layer.surrogate_slope)
    if layer.params.spiking:
        events = Events.from_dense(out.detach().cpu().numpy())
        layer.last_record = SpikeRecord(events=events, dt=layer.dt)
    return out
