"""Integrate-and-fire neuron with instantaneous (delta) synapses and an optional leak:
NIR's ``IF``, ``I`` (integrator), and ``LIF`` / ``LI`` with any resting and reset
potential, per-neuron values and a constant drive.

Equations (dimensionless voltage, times in ms)::

    dV/dt = (v_leak - V) / tau_mem + drive + sum_k w_k delta(t - t_k)
    V >= threshold  ->  spike, V <- v_reset          (readout: no threshold)

``tau_mem = inf`` removes the leak (IF: dV/dt = drive + input). V starts at zero. On the
step grid, as in :mod:`spikeforge.neurons.delta_lif`, the input collected in step n
(the drivers put it in ``i``) raises V and then step n + 1 evolves it exactly::

    V <- v_leak + alpha_mem (V + I - v_leak) + drive_v,   I <- 0
    alpha_mem = exp(-dt / tau_mem)        (1 without leak)
    drive_v   = (1 - alpha_mem) tau_mem drive     (dt drive without leak)

With v_leak = v_reset = drive = 0, finite tau and one value per layer this is
:mod:`spikeforge.neurons.delta_lif`. V jumps over the threshold only at input arrivals
(or by the drive), so spike times have no EventProp gradient: the model trains with
surrogate-gradient BPTT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons.base import NeuronModel
from spikeforge.neurons.vectors import above, as_values, check_values, row_like

ALPHA_MEM, V_LEAK, THRESHOLD, V_RESET, DRIVE_V = range(5)
FACTOR_NAMES = ("alpha_mem", "v_leak", "threshold", "v_reset", "drive_v")


@dataclass(frozen=True)
class IFParams:
    """Parameters of a delta-synapse integrate-and-fire population (an integrator
    readout when ``spiking`` is False).

    Attributes:
        tau_mem: the layer's membrane time constant in ms (> dt; ``math.inf``: no leak).
        threshold: firing threshold(s) (ignored for a readout).
        v_leak: resting potential(s) (unused without leak). v_reset: potential(s) after a
            spike.
        drive: constant drive(s) in voltage per ms (a bias current).
        tau_mem_per_neuron: optional per-neuron time constants in ms (empty: ``tau_mem``).
        spiking: True for a spiking layer, False for a readout of V.

    Value fields take a number or a sequence (one value per neuron, or one value).
    """

    tau_mem: float = math.inf
    threshold: tuple[float, ...] = (1.0,)
    v_leak: tuple[float, ...] = (0.0,)
    v_reset: tuple[float, ...] = (0.0,)
    drive: tuple[float, ...] = (0.0,)
    tau_mem_per_neuron: tuple[float, ...] = ()
    spiking: bool = True

    def __post_init__(self) -> None:
        for name in ("threshold", "v_leak", "v_reset", "drive", "tau_mem_per_neuron"):
            object.__setattr__(self, name, as_values(getattr(self, name)))

    def validate(self, dt: float, where: str = "layer") -> None:
        """Raise :class:`SpikeforgeError` unless simulable with time step dt (ms)."""
        for tau in (self.tau_mem, *self.tau_mem_per_neuron):
            if not (isinstance(tau, int | float) and tau > dt and not math.isnan(tau)):
                raise SpikeforgeError(
                    f"{where}: tau_mem must be a number of ms above dt={dt} (or inf for no "
                    f"leak), got {tau!r}; increase tau_mem or reduce dt")
        check_values(self, ("threshold", "v_leak", "v_reset", "drive"), where)
        if self.spiking and not above(self.threshold, self.v_reset):
            raise SpikeforgeError(f"{where}: every threshold must lie above v_reset; raise "
                                  f"the threshold or lower v_reset")


def factors(params: IFParams, dt: float, taus: dict, xp) -> list:
    """Factor-table rows (see :data:`FACTOR_NAMES`); ``taus`` gives the rows' size and
    device."""
    like = taus["tau_mem"]
    tau = row_like(params.tau_mem_per_neuron or (params.tau_mem,), like, xp)
    leaky = tau < math.inf
    finite_tau = xp.where(leaky, tau, xp.ones_like(tau))
    alpha = xp.where(leaky, xp.exp(-dt / finite_tau), xp.ones_like(tau))
    drive = row_like(params.drive, like, xp)
    drive_v = xp.where(leaky, (1.0 - alpha) * finite_tau * drive, dt * drive)
    threshold = (row_like(params.threshold, like, xp) if params.spiking
                 else xp.zeros_like(like) + math.inf)
    v_leak = xp.where(leaky, row_like(params.v_leak, like, xp), xp.zeros_like(tau))
    return [alpha, v_leak, threshold, row_like(params.v_reset, like, xp), drive_v]


def integrate(v, i, a, p):
    """The step's input raises V, then V evolves exactly over the step."""
    return (p[V_LEAK] + p[ALPHA_MEM] * (v + i - p[V_LEAK]) + p[DRIVE_V], 0.0 * i, a)


def margin(v, i, a, p):
    """Distance above threshold; the neuron spikes when it is >= 0."""
    return v - p[THRESHOLD]


def reset(v, i, a, s, s_reset, p):
    """V <- v_reset where s_reset = 1."""
    return v * (1.0 - s_reset) + s_reset * p[V_RESET], i, a


def spike_values(v, i, a, p):
    """Recorded at a spike (for statistics; no adjoint uses them)."""
    return v, a


def adjoint_integrate(lv, li, la, p):
    """Transpose of the linear part of :func:`integrate`."""
    return p[ALPHA_MEM] * lv, p[ALPHA_MEM] * lv, la


def nir_node(params: IFParams, size: int, nir):
    """NIR ``IF`` / ``I`` (no leak, r = 1: a Dirac of area w raises V by w) or, with a leak,
    ``LIF`` / ``LI`` with ``r = tau`` (the same jump), times in seconds. The constant
    ``drive`` is not part of the node: :func:`nir_input_bias` gives the ``Affine`` bias."""
    from spikeforge.errors import SpikeforgeError

    def vector(values) -> np.ndarray:
        return np.broadcast_to(np.asarray(values, dtype=np.float64), (size,)).copy()

    tau = vector(params.tau_mem_per_neuron or (params.tau_mem,))
    if np.all(np.isinf(tau)):
        if not params.spiking:
            return nir.I(r=np.ones(size))
        return nir.IF(r=np.ones(size), v_threshold=vector(params.threshold),
                      v_reset=vector(params.v_reset))
    if np.any(np.isinf(tau)):
        raise SpikeforgeError("an IF layer with leaky and non-leaky neurons has no NIR node; "
                              "give every neuron a finite tau_mem or none")
    tau_s = tau / 1e3
    common = dict(tau=tau_s, r=tau_s.copy(), v_leak=vector(params.v_leak))
    if not params.spiking:
        return nir.LI(**common)
    return nir.LIF(**common, v_threshold=vector(params.threshold),
                   v_reset=vector(params.v_reset))


def nir_input_bias(params: IFParams, size: int) -> np.ndarray | None:
    """The bias b [size] (per s) of the ``Affine`` node feeding :func:`nir_node`'s node that
    gives spikeforge's ``drive`` (voltage per ms): b = 1000 drive for both node kinds (r = 1
    without leak, r = tau with it). None when there is no drive."""
    if not any(params.drive):
        return None
    return np.broadcast_to(np.asarray(params.drive, dtype=np.float64), (size,)) * 1e3


MODEL = NeuronModel(
    title="integrate-and-fire (delta synapse, optional leak)",
    name="if",
    params_type=IFParams,
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
    source_files=(__file__,),
    nir_node=nir_node,
)
