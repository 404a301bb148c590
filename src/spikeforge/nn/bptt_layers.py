"""Glue between spikeforge layers and the BPTT loops of :mod:`spikeforge.nn.bptt`.

A layer built with ``method="bptt"`` turns its input into a dense tensor
``[B, T, in]`` (sparse event inputs are densified on the weight's device), computes all
input currents with one GEMM and runs the differentiable loop. Its output is a dense
tensor ``[B, T, out]`` carrying autograd history; the spikes are also stored as a
:class:`SpikeRecord` in ``layer.last_record`` (for rates, rasters, energy counts) but
not attached to the output, so consumers treat it as an ordinary dense tensor.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.nn.bptt import Adaptation, check_surrogate, li_loop, lif_loop, torch_decays
from spikeforge.nn.records import SpikeRecord, record_of
from spikeforge.nn.time_constants import setup_time_constants, tau_vectors

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


def dense_input(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Layer input as a dense ``[B, T, in]`` tensor in the weight's dtype and device."""
    weight = layer.weight
    record = record_of(x)
    if record is not None and x.numel() == 0:
        if not math.isnan(record.dt):
            raise SpikeforgeError(
                f"{type(layer).__name__}: method='bptt' cannot take the sparse output of an "
                f"EventProp layer; build every layer with the same method"
            )
        dense = record.events.to_dense(np.float64)
        return torch.from_numpy(dense).to(device=weight.device, dtype=weight.dtype)
    return x.to(device=weight.device, dtype=weight.dtype)


def _decays(layer: nn.Module):
    tau_mem, tau_syn = tau_vectors(layer, layer.params, layer.out_features,
                                   layer.weight.device)
    return torch_decays(tau_mem, tau_syn, layer.dt, layer.weight.dtype)


def lif_bptt(layer: nn.Module, x: torch.Tensor,
             adaptation: Adaptation | None = None) -> torch.Tensor:
    """Forward of a LIF (or, with ``adaptation``, ALIF) layer by the BPTT loop."""
    inputs = dense_input(layer, x)
    spikes = lif_loop(
        inputs @ layer.weight.t(), layer.recurrent_weight, _decays(layer),
        layer.params.threshold, layer.surrogate, layer.surrogate_slope, adaptation,
    )  # fmt: skip
    events = Events.from_dense(spikes.detach().cpu().numpy())
    layer.last_record = SpikeRecord(events=events, dt=layer.dt)
    return spikes


def li_bptt(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward of an LI readout by the BPTT loop: V ``[B, T, out]``."""
    return li_loop(dense_input(layer, x) @ layer.weight.t(), _decays(layer))
