"""PyTorch modules: spiking layers with dense synapses (LIF, LI; ALIF in :mod:`alif`).

Every layer is one :class:`SpikingLayer` whose neuron model comes from its parameter
object (:mod:`spikeforge.neurons`); training by EventProp (the engine's generic drivers)
or surrogate-gradient BPTT (the same dynamics differentiated by autograd).

Shapes: inputs ``[batch, time, in_features]`` (spike counts or input currents per step,
or an event token from :func:`spikeforge.nn.event_input` / a previous spikeforge layer);
spiking layers output spikes ``[batch, time, out_features]``; the LI readout outputs
membrane voltages ``[batch, time, out_features]``. Times are in ms.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import fields, replace

import torch
from torch import nn

from spikeforge.engine.api import BACKENDS, DEFAULT_MIN_VDOT
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events
from spikeforge.neurons import LIFParams, model_of
from spikeforge.nn.activity import layer_label, warn_if_silent
from spikeforge.nn.bptt import DEFAULT_SLOPE, DEFAULT_SURROGATE
from spikeforge.nn.bptt_layers import configure_method, layer_bptt
from spikeforge.nn.device_functional import run_device, uses_device_path
from spikeforge.nn.functional import LayerCall, numpy_dtype, run_layer
from spikeforge.nn.records import SpikeRecord, event_input, record_of
from spikeforge.nn.time_constants import neuron_arrays


def layer_input(x: torch.Tensor | Events, layer: nn.Module) -> torch.Tensor:
    """``x`` as a tensor the layer reads: an :class:`Events` batch (what
    :meth:`SpikeDataset.collate <spikeforge.data.SpikeDataset.collate>` yields) becomes an
    event token (:func:`~spikeforge.nn.event_input`), or a dense tensor on the weight's
    device for the torch (CUDA) path; tensors pass through unchanged."""
    if not isinstance(x, Events):
        return x
    weight = layer.weight
    if weight.is_cuda or getattr(layer, "backend", "") == "torch":
        return torch.from_numpy(x.to_dense()).to(weight)
    return event_input(x, weight.dtype, layer.dt)


def check_input(x: torch.Tensor, in_features: int, name: str) -> SpikeRecord | None:
    """The spike record ``x`` carries (None for dense input), after checking that ``x``
    fits a layer with ``in_features`` inputs.

    Dense input is batch-first, ``[batch, time, in_features]``; time-major input
    ``[time, batch, in_features]`` cannot be told apart by its shape and must be
    transposed first (``x.transpose(0, 1)``).
    """
    if not isinstance(x, torch.Tensor):
        raise SpikeforgeError(
            f"{name}: expected a torch tensor [batch, time, {in_features}] or a "
            f"spikeforge Events batch, got {type(x).__name__}"
        )
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
            f"{name}: expected input of shape [batch, time, {in_features}] (batch first), "
            f"got {list(x.shape)}; reshape the input or change in_features (time-major "
            f"[time, batch, {in_features}] input: pass x.transpose(0, 1))"
        )
    return None


class SpikingLayer(nn.Module):
    """A population of any registered neuron model with dense input weights ``[out, in]``
    (and optional all-to-all recurrent weights ``[out, out]``).

    Args:
        in_features, out_features: layer sizes.
        params: neuron parameters (e.g. :class:`~spikeforge.neurons.LIFParams`); a
            non-spiking one makes a readout.
        dt: time step in ms.
        recurrent: add recurrent weights (the model must support ``"recurrent"``).
        dense_output: return dense spikes (True) or an event token that only spikeforge
            layers/losses consume (O(spikes) memory; EventProp only). With EventProp on
            the CPU the dense spikes are a :class:`~spikeforge.nn.lazy_spikes.LazySpikes`
            tensor, built only if a non-spikeforge operation reads it.
        backend: ``"auto"`` (compiled event drivers on CPU, torch path on CUDA),
            ``"event"``, ``"reference"`` or ``"torch"``.
        weight_mean, weight_std: initial weights ~ N(mean, std / sqrt(in_features)).
        recurrent_std: initial recurrent weights ~ N(0, std / sqrt(out_features)).
        min_vdot: lower bound on the EventProp jump denominator.
        method, surrogate, surrogate_slope, tau_spread, train_tau: see :class:`LIF`.
    """

    def __init__(self, in_features: int, out_features: int, params, dt: float = 1.0, *,
                 recurrent: bool = False, dense_output: bool = True, backend: str = "auto",
                 weight_mean: float = 0.0, weight_std: float = 1.0, recurrent_std: float = 0.5,
                 min_vdot: float = DEFAULT_MIN_VDOT, method: str = "eventprop",
                 surrogate: str = DEFAULT_SURROGATE, surrogate_slope: float = DEFAULT_SLOPE,
                 tau_spread: float = 0.0, train_tau: bool = False) -> None:
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
        self.model = model_of(params)
        for wanted, feature in ((recurrent, "recurrent"), (method == "bptt", "bptt"),
                                (tau_spread > 0, "per_neuron_tau"),
                                (train_tau, "train_tau")):  # fmt: skip
            if wanted and not self.model.supports(feature):
                raise SpikeforgeError(f"{name}: the {self.model.name} neuron model does not "
                                      f"support {feature}; choose another setting or model")
        if method == "eventprop" and not self.model.supports("eventprop"):
            warnings.warn(f"{name}: the {self.model.name} neuron model has no EventProp "
                          f"gradient, so this layer cannot learn with method='eventprop' "
                          f"(it runs forward only); use method='bptt' to train it",
                          stacklevel=2)
        if backend != "auto" and backend not in (*BACKENDS, "torch"):
            raise SpikeforgeError(
                f"{name}: unknown backend {backend!r}; choose 'auto' or one of {BACKENDS}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.params, self.dt, self.backend = params, float(dt), backend
        self.recurrent, self.dense_output = recurrent, dense_output
        self.min_vdot = min_vdot
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        with torch.no_grad():
            self.weight.normal_(weight_mean, weight_std / math.sqrt(in_features))
        if recurrent:
            self.recurrent_weight = nn.Parameter(torch.empty(out_features, out_features))
            with torch.no_grad():
                self.recurrent_weight.normal_(0.0, recurrent_std / math.sqrt(out_features))
        else:
            self.register_parameter("recurrent_weight", None)
        self.last_record: SpikeRecord | None = None
        configure_method(self, method, surrogate, surrogate_slope, tau_spread, train_tau)

    def forward(self, x: torch.Tensor | Events) -> torch.Tensor:
        """Output for input ``x``: a batch-first tensor ``[batch, time, in_features]``,
        an event token, or an :class:`Events` batch (read sparsely)."""
        x = layer_input(x, self)
        upstream = check_input(x, self.in_features, type(self).__name__)
        if self.method == "bptt":
            return layer_bptt(self, x)
        if uses_device_path(x, self.backend):
            return run_device(self, x)
        call = self.engine_call(self.params, self.dense_output, upstream)
        out = run_layer(x, self.weight, self.recurrent_weight, call)
        if self.params.spiking:
            self.last_record = call.output
            if torch.is_grad_enabled() and self.weight.requires_grad:
                warn_if_silent(layer_label(self), call.output.events.n_events)
        return out

    def engine_call(self, params, dense_output: bool,
                    upstream: SpikeRecord | None) -> LayerCall:
        """The CPU engine's arguments for one forward call with neuron ``params``."""
        return LayerCall(
            neurons=neuron_arrays(self, params, self.out_features, self.dt,
                                  numpy_dtype(self.weight.dtype)),
            backend="event" if self.backend == "auto" else self.backend,
            min_vdot=self.min_vdot, dense_output=dense_output, upstream=upstream,
        )

    def extra_repr(self) -> str:
        values = ", ".join(f"{f.name}={getattr(self.params, f.name)}"
                           for f in fields(self.params) if f.name != "spiking")
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"model={self.model.name}, {values}, dt={self.dt}")


class LIF(SpikingLayer):
    """Current-based LIF layer (exponential synapse) with dense input (and optional
    all-to-all recurrent) weights; gradients by EventProp.

    Args:
        in_features, out_features: layer sizes.
        recurrent: add a trainable recurrent weight matrix ``[out, out]``.
        tau_mem, tau_syn: time constants in ms; threshold: firing threshold; dt: step (ms).
        dense_output: return dense spikes ``[B, T, out]`` (default; with EventProp on the
            CPU built only when a non-spikeforge operation reads them, so a layer feeding
            spikeforge layers stays O(spikes)); False returns an empty token that only
            spikeforge layers/losses can consume.
        backend: ``"auto"`` (compiled event kernels on CPU, torch path on CUDA), ``"event"``,
            ``"reference"`` or ``"torch"`` (the CUDA path's torch ops, also on CPU).
        weight_mean, weight_std: initial weights ~ N(mean, std / sqrt(in_features)).
        recurrent_std: initial recurrent weights ~ N(0, std / sqrt(out_features)).
        min_vdot: lower bound on I - threshold in the adjoint jump.
        method: ``"eventprop"`` (exact gradients) or ``"bptt"`` (surrogate-gradient
            backprop through time, same forward dynamics; see :mod:`spikeforge.nn.bptt`).
        surrogate, surrogate_slope: BPTT surrogate (``fast_sigmoid`` or ``arctan``).
        tau_spread: per-neuron taus drawn from U[tau (1 - spread), tau (1 + spread)].
        train_tau: make the per-neuron taus trainable (needs ``method="bptt"``).
        params: parameters of another registered spiking neuron model (replaces
            tau_mem, tau_syn and threshold); :class:`spikeforge.nn.ALIF` uses it.

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
        params: LIFParams | None = None,
        **options,
    ) -> None:
        if params is None:
            params = LIFParams(tau_mem=tau_mem, tau_syn=tau_syn, threshold=threshold)
        super().__init__(in_features, out_features, params, dt, recurrent=recurrent, **options)

    def subthreshold_voltage(self, x: torch.Tensor | Events) -> torch.Tensor:
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
        x = layer_input(x, self)
        upstream = check_input(x, self.in_features, "LIF")
        readout = replace(self.params, spiking=False)  # the layer's own model, no threshold
        return run_layer(x, self.weight, None, self.engine_call(readout, True, upstream))


class LI(SpikingLayer):
    """Leaky-integrator readout (no threshold): returns V ``[batch, time, out_features]``.

    Args: as :class:`LIF` (no threshold, recurrence or spike output options).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        tau_mem: float = 20.0,
        tau_syn: float = 5.0,
        dt: float = 1.0,
        **options,
    ) -> None:
        params = LIFParams(tau_mem=tau_mem, tau_syn=tau_syn, spiking=False)
        super().__init__(in_features, out_features, params, dt, **options)
