"""General current-based LIF (NIR's ``CubaLIF`` / ``CubaLI``): per-neuron time constants,
threshold, resting and reset potentials and a constant input current.

Equations (dimensionless voltage, times in ms)::

    tau_syn dI/dt = -I + bias           presynaptic spike of weight w at t:  I += w
    tau_mem dV/dt = (v_leak - V) + I
    V >= threshold  ->  spike, V <- v_reset          (readout: no threshold)

Every state starts at zero (V = 0, I = 0), as in snnTorch, Norse and spikeforge's other
models. Each step of length dt is integrated exactly: in the deviations from the steady
state (I* = bias, V* = v_leak + bias) the map is the one of :mod:`spikeforge.neurons.lif`,
so per step::

    V <- alpha_mem V + syn_gain I + drive_v,   I <- alpha_syn I + drive_i
    drive_i = (1 - alpha_syn) bias
    drive_v = (1 - alpha_mem) (v_leak + bias) - syn_gain bias

With v_leak = v_reset = bias = 0 and one value per layer this is
:mod:`spikeforge.neurons.lif` (which the NIR importer uses in that case, since it also
has EventProp gradients). This model trains with surrogate-gradient BPTT only.

Per-neuron values: ``threshold``, ``v_leak``, ``v_reset``, ``bias`` and the optional
``tau_mem_per_neuron`` / ``tau_syn_per_neuron`` hold one value per neuron or a single
value for the whole layer. ``tau_mem`` / ``tau_syn`` are the layer's scalar time
constants (used when no per-neuron values are given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons import lif
from spikeforge.neurons.base import NeuronModel, exact_decays
from spikeforge.neurons.lif import check_tau
from spikeforge.neurons.vectors import above, as_values, check_values, row_like

ALPHA_MEM, ALPHA_SYN, SYN_GAIN, THRESHOLD, V_RESET, DRIVE_V, DRIVE_I, TAU_MEM = range(8)
FACTOR_NAMES = ("alpha_mem", "alpha_syn", "syn_gain", "threshold", "v_reset", "drive_v",
                "drive_i", "tau_mem")


@dataclass(frozen=True)
class CubaLIFParams:
    """Parameters of a general current-based LIF population (an LI readout when
    ``spiking`` is False).

    Attributes:
        tau_mem, tau_syn: the layer's membrane / synaptic time constants in ms (> dt).
        threshold: firing threshold(s) (dimensionless; ignored for a readout).
        v_leak: resting potential(s). v_reset: potential(s) after a spike.
        bias: constant input current(s) (same units as I).
        tau_mem_per_neuron, tau_syn_per_neuron: optional per-neuron time constants in
            ms (empty: ``tau_mem`` / ``tau_syn`` for every neuron).
        spiking: True for a spiking layer, False for a leaky-integrator readout.

    Value fields take a number or a sequence (one value per neuron, or one value).
    """

    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: tuple[float, ...] = (1.0,)
    v_leak: tuple[float, ...] = (0.0,)
    v_reset: tuple[float, ...] = (0.0,)
    bias: tuple[float, ...] = (0.0,)
    tau_mem_per_neuron: tuple[float, ...] = ()
    tau_syn_per_neuron: tuple[float, ...] = ()
    spiking: bool = True

    def __post_init__(self) -> None:
        for name in ("threshold", "v_leak", "v_reset", "bias", "tau_mem_per_neuron",
                     "tau_syn_per_neuron"):
            object.__setattr__(self, name, as_values(getattr(self, name)))

    def validate(self, dt: float, where: str = "layer") -> None:
        """Raise :class:`SpikeforgeError` unless simulable with time step dt (ms)."""
        for name in ("tau_mem", "tau_syn"):
            check_tau(getattr(self, name), name, dt, where)
            for value in getattr(self, f"{name}_per_neuron"):
                check_tau(value, f"{name}_per_neuron", dt, where)
        check_values(self, ("threshold", "v_leak", "v_reset", "bias"), where)
        if self.spiking and not above(self.threshold, self.v_reset):
            raise SpikeforgeError(f"{where}: every threshold must lie above v_reset; raise "
                                  f"the threshold or lower v_reset")


def factors(params: CubaLIFParams, dt: float, taus: dict, xp) -> list:
    """Factor-table rows (see :data:`FACTOR_NAMES`); ``taus`` gives the rows' size and
    device (per-neuron values in the parameters replace its time constants)."""
    like = taus["tau_mem"]
    tau_mem = row_like(params.tau_mem_per_neuron or (params.tau_mem,), like, xp)
    tau_syn = row_like(params.tau_syn_per_neuron or (params.tau_syn,), like, xp)
    alpha_mem, alpha_syn, syn_gain = exact_decays(tau_mem, tau_syn, dt, xp)
    bias = row_like(params.bias, like, xp)
    v_leak = row_like(params.v_leak, like, xp)
    threshold = (row_like(params.threshold, like, xp) if params.spiking
                 else xp.zeros_like(like) + math.inf)
    drive_v = (1.0 - alpha_mem) * (v_leak + bias) - syn_gain * bias
    return [alpha_mem, alpha_syn, syn_gain, threshold, row_like(params.v_reset, like, xp),
            drive_v, (1.0 - alpha_syn) * bias, tau_mem]


def integrate(v, i, a, p):
    """Exact evolution over one step, constant drive included."""
    return (p[ALPHA_MEM] * v + p[SYN_GAIN] * i + p[DRIVE_V], p[ALPHA_SYN] * i + p[DRIVE_I],
            a)


def reset(v, i, a, s, s_reset, p):
    """V <- v_reset where s_reset = 1."""
    return v * (1.0 - s_reset) + s_reset * p[V_RESET], i, a


def adjoint_integrate(lv, li, la, p):
    """Transpose of the linear part of :func:`integrate` (constants have no adjoint)."""
    return p[ALPHA_MEM] * lv, p[ALPHA_SYN] * li + p[SYN_GAIN] * lv, la


def nir_node(params: CubaLIFParams, size: int, nir):
    """NIR ``CubaLIF`` (``CubaLI`` for a readout), times in seconds, per-neuron vectors of
    ``size``: r = 1 and ``w_in = tau_syn`` (a Dirac of area w raises I by w, spikeforge's
    I += w), v_leak, v_threshold, v_reset as given. The constant current ``bias`` is not
    part of the node: :func:`nir_input_bias` gives the ``Affine`` bias that carries it."""
    def vector(values) -> np.ndarray:
        return np.broadcast_to(np.asarray(values, dtype=np.float64), (size,)).copy()

    tau_syn = vector(params.tau_syn_per_neuron or (params.tau_syn,)) / 1e3
    tau_mem = vector(params.tau_mem_per_neuron or (params.tau_mem,)) / 1e3
    common = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=np.ones(size), v_leak=vector(params.v_leak),
                  w_in=tau_syn.copy())
    if not params.spiking:
        return nir.CubaLI(**common)
    return nir.CubaLIF(**common, v_threshold=vector(params.threshold),
                       v_reset=vector(params.v_reset))


def nir_input_bias(params: CubaLIFParams, size: int) -> np.ndarray | None:
    """The bias b [size] of the ``Affine`` node feeding :func:`nir_node`'s node that makes
    NIR's steady current w_in b equal ``bias`` (None when there is no bias)."""
    if not any(params.bias):
        return None
    tau_syn = np.broadcast_to(np.asarray(params.tau_syn_per_neuron or (params.tau_syn,)),
                              (size,)) / 1e3
    return np.broadcast_to(np.asarray(params.bias, dtype=np.float64), (size,)) / tau_syn


# the threshold and the synaptic current sit in the same rows as in the plain LIF model
margin = lif.margin
spike_values = lif.spike_values


MODEL = NeuronModel(
    title="general current-based LIF (v_leak, v_reset, bias, per-neuron values)",
    name="cuba_lif",
    params_type=CubaLIFParams,
    factor_names=FACTOR_NAMES,
    factors=factors,
    n_spike_values=1,
    features=frozenset({"spiking", "readout", "recurrent", "bptt", "nir"}),
    integrate=integrate,
    margin=margin,
    reset=reset,
    spike_values=spike_values,
    adjoint_integrate=adjoint_integrate,
    jump_denominator=None,
    jump=None,
    source_files=(__file__, lif.__file__),
    nir_node=nir_node,
)
