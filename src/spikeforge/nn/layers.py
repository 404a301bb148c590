"""PyTorch modules: LIF and LI layers with EventProp gradients.

Shapes: inputs ``[batch, time, in_features]`` (spike counts or input currents per step,
or an event token from :func:`spikeforge.nn.event_input` / a previous spikeforge layer);
LIF outputs spikes ``[batch, time, out_features]``; LI outputs membrane voltages
``[batch, time, out_features]``. Times are in ms.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spikeforge.engine import NeuronArrays
from spikeforge.engine.layers import BACKENDS, DEFAULT_MIN_VDOT
from spikeforge.errors import SpikeforgeError
from spikeforge.model.neurons import LIFParams
from spikeforge.nn.bptt import DEFAULT_SLOPE, DEFAULT_SURROGATE
from spikeforge.nn.bptt_layers import configure_method, li_bptt, lif_bptt
from spikeforge.nn.device_functional import li_device, lif_device, uses_device_path
from spikeforge.nn.functional import LayerCall, numpy_dtype, run_li, run_lif
from spikeforge.nn.records import SpikeRecord, record_of
from spikeforge.nn.time_constants import neuron_arrays


def _check_input(x: torch.Tensor, in_features: int, name: str) -> SpikeRecord | None:
    record = record_of(x)
    if record is not None and not isinstance(record, SpikeRecord):
        record = None  # dense spikes of the torch (CUDA) path: checked as a dense input
    if record is not None:
        n_units = record.events.n_units
        if n_units != in_features:
            raise SpikeforgeError(
                f"{name}: input has {n_units} channels but the layer expects "
                f"in_features={in_features}; match the previous layer's size"
            )
        return record
    if x.ndim != 3 or x.shape[-1] != in_features:
        raise SpikeforgeError(
            f"{name}: expected input of shape [batch, time, {in_features}], "
            f"got {list(x.shape)}; reshape the input or change in_features"
        )
    return None


class _SpikingLayer(nn.Module):
    """Shared set-up: parameters, validation and initialisation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        params: LIFParams,
        dt: float,
        backend: str,
        weight_mean: float,
        weight_std: float,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if in_features < 1 or out_features < 1:
            raise SpikeforgeError(
                f"{name}: in_features and out_features must be >= 1, "
                f"got {in_features} and {out_features}"
            )
        if not (dt > 0):
            raise SpikeforgeError(f"{name}: dt must be a positive number of ms, got {dt!r}")
        params.validate(dt, name)
        if backend != "auto" and backend not in (*BACKENDS, "torch"):
            raise SpikeforgeError(
                f"{name}: unknown backend {backend!r}; choose 'auto' or one of {BACKENDS}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.params, self.dt, self.backend = params, float(dt), backend
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        with torch.no_grad():
            self.weight.normal_(weight_mean, weight_std / math.sqrt(in_features))

    def _call(self, x: torch.Tensor, upstream: SpikeRecord | None, dense: bool) -> LayerCall:
        dtype = numpy_dtype(self.weight.dtype)
        return LayerCall(
            neurons=neuron_arrays(self, self.params, self.out_features, self.dt, dtype),
            dt=self.dt,
            backend="event" if self.backend == "auto" else self.backend,
            min_vdot=getattr(self, "min_vdot", DEFAULT_MIN_VDOT),
            dense_output=dense,
            upstream=upstream,
        )

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"tau_mem={p.tau_mem}, tau_syn={p.tau_syn}, dt={self.dt}"
        )


class LIF(_SpikingLayer):
    """Current-based LIF layer (exponential synapse) with dense input (and optional
    all-to-all recurrent) weights; gradients by EventProp.

    Args:
        in_features, out_features: layer sizes.
        recurrent: add a trainable recurrent weight matrix ``[out, out]``.
        tau_mem, tau_syn: time constants in ms; threshold: firing threshold; dt: step (ms).
        dense_output: return dense spikes ``[B, T, out]`` (default); False returns an
            empty token that only spikeforge layers/losses can consume (O(spikes) memory).
        backend: ``"auto"`` (compiled event kernels on CPU, torch path on CUDA), ``"event"``,
            ``"reference"`` or ``"torch"`` (the CUDA path's torch ops, also on CPU).
        min_vdot: lower bound on I - threshold in the adjoint jump.
        method: ``"eventprop"`` (exact gradients) or ``"bptt"`` (surrogate-gradient
            backprop through time, same forward dynamics; see :mod:`spikeforge.nn.bptt`).
        surrogate, surrogate_slope: BPTT surrogate (``fast_sigmoid`` or ``arctan``).
        tau_spread: per-neuron taus drawn from U[tau (1 - spread), tau (1 + spread)].
        train_tau: make the per-neuron taus trainable (needs ``method="bptt"``).

    Attributes:
        last_record: the :class:`SpikeRecord` of the most recent forward call.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        recurrent: bool = False,
        tau_mem: float = 20.0,
        tau_syn: float = 5.0,
        threshold: float = 1.0,
        dt: float = 1.0,
        *,
        dense_output: bool = True,
        backend: str = "auto",
        weight_mean: float = 0.0,
        weight_std: float = 1.0,
        recurrent_std: float = 0.5,
        min_vdot: float = DEFAULT_MIN_VDOT,
        method: str = "eventprop",
        surrogate: str = DEFAULT_SURROGATE,
        surrogate_slope: float = DEFAULT_SLOPE,
        tau_spread: float = 0.0,
        train_tau: bool = False,
    ) -> None:
        params = LIFParams(tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold, spiking=True)
        super().__init__(
            in_features, out_features, params, dt, backend, weight_mean, weight_std
        )
        self.recurrent, self.dense_output, self.min_vdot = recurrent, dense_output, min_vdot
        self.last_record: SpikeRecord | None = None
        if recurrent:
            self.recurrent_weight = nn.Parameter(torch.empty(out_features, out_features))
            with torch.no_grad():
                self.recurrent_weight.normal_(0.0, recurrent_std / math.sqrt(out_features))
        else:
            self.register_parameter("recurrent_weight", None)
        configure_method(self, method, surrogate, surrogate_slope, tau_spread, train_tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upstream = _check_input(x, self.in_features, "LIF")
        if self.method == "bptt":
            return lif_bptt(self, x)
        if uses_device_path(x, self.backend):
            return lif_device(self, x)
        call = self._call(x, upstream, self.dense_output)
        out = run_lif(x, self.weight, self.recurrent_weight, call)
        self.last_record = call.output
        return out

    def subthreshold_voltage(self, x: torch.Tensor) -> torch.Tensor:
        """Membrane voltage ``[B, T, out]`` the layer would have without threshold or reset.

        Until a neuron's first spike this is its actual voltage, so for neurons that stay
        silent it is exact, and its (EventProp) gradient is theirs: the way to give a silent
        output neuron a gradient (e.g. in first-spike-time training). Feed-forward only.
        """
        if self.recurrent_weight is not None:
            raise SpikeforgeError(
                "subthreshold_voltage: not defined for a recurrent LIF layer (silent neurons "
                "still receive recurrent input); use a feed-forward output layer"
            )
        upstream = _check_input(x, self.in_features, "LIF")
        p = self.params
        call = self._call(x, upstream, True)
        call.neurons = NeuronArrays.from_params(
            LIFParams(p.tau_mem, p.tau_syn, p.threshold, spiking=False),
            self.out_features, self.dt, call.neurons.alpha_mem.dtype,
        )  # fmt: skip
        return run_li(x, self.weight, call)


class LI(_SpikingLayer):
    """Leaky-integrator readout (no threshold): returns V ``[batch, time, out_features]``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        tau_mem: float = 20.0,
        tau_syn: float = 5.0,
        dt: float = 1.0,
        *,
        backend: str = "auto",
        weight_mean: float = 0.0,
        weight_std: float = 1.0,
        method: str = "eventprop",
        tau_spread: float = 0.0,
        train_tau: bool = False,
    ) -> None:
        params = LIFParams(tau_mem=tau_mem, tau_syn=tau_syn, spiking=False)
        super().__init__(
            in_features, out_features, params, dt, backend, weight_mean, weight_std
        )
        configure_method(self, method, DEFAULT_SURROGATE, DEFAULT_SLOPE, tau_spread, train_tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        upstream = _check_input(x, self.in_features, "LI")
        if self.method == "bptt":
            return li_bptt(self, x)
        if uses_device_path(x, self.backend):
            return li_device(self, x)
        return run_li(x, self.weight, self._call(x, upstream, True))
