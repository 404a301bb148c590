"""Current-based leaky integrate-and-fire neuron (LIF) and its leaky-integrator readout (LI).

Equations (dimensionless, V_rest = 0, times in ms; ALGORITHMS.md section 1)::

    tau_mem dV/dt = -V + I
    tau_syn dI/dt = -I          presynaptic spike of weight w at t:  I += w
    V >= threshold  ->  spike, V <- 0

The LI readout is the same neuron without threshold (the drivers record V instead of
spikes). Each step of length dt is integrated exactly (:func:`exact_decays`):
``V <- alpha_mem V + syn_gain I``, ``I <- alpha_syn I``. The EventProp adjoint between
steps is the transpose of that map; at a spike (Wunderlich & Pehle 2021, with the jump
evaluated on the step grid as the drivers record it)::

    lam_V <- (lam_V I_k - tau_mem dL/dt_k) / max(I_k - theta, min_vdot)

with I_k the current at the *start* of the crossing step (the recorded current after the
step's decay divided by alpha_syn: the current that drove V over threshold in it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons.base import NeuronModel, exact_decays

ALPHA_MEM, ALPHA_SYN, SYN_GAIN, THRESHOLD, TAU_MEM = range(5)
FACTOR_NAMES = ("alpha_mem", "alpha_syn", "syn_gain", "threshold", "tau_mem")


def check_tau(value, name: str, dt: float, where: str) -> None:
    """Raise :class:`SpikeforgeError` unless ``value`` is a time constant (ms) above dt."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise SpikeforgeError(
            f"{where}: {name} must be a positive number of ms, got {value!r}; "
            f"set it to e.g. 20.0"
        )
    if dt >= value:
        raise SpikeforgeError(
            f"{where}: time step dt={dt} ms must be smaller than {name}={value} ms; "
            f"reduce dt or increase {name}"
        )


@dataclass(frozen=True)
class LIFParams:
    """Parameters of a current-based LIF (or LI, when ``spiking`` is False) population.

    Attributes:
        tau_mem: membrane time constant in ms (> 0).
        tau_syn: synaptic current time constant in ms (> 0).
        threshold: firing threshold (dimensionless, > 0); ignored for LI.
        spiking: True for LIF, False for a leaky-integrator readout.
    """

    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    spiking: bool = True

    def validate(self, dt: float, where: str = "layer") -> None:
        """Raise :class:`SpikeforgeError` unless simulable with time step dt (ms)."""
        for name in ("tau_mem", "tau_syn"):
            check_tau(getattr(self, name), name, dt, where)
        if self.spiking and not (math.isfinite(self.threshold) and self.threshold > 0):
            raise SpikeforgeError(
                f"{where}: threshold must be positive, got {self.threshold!r}; set it to e.g. 1.0"
            )


def factors(params: LIFParams, dt: float, taus: dict, xp) -> list:
    """Factor-table rows (see :data:`FACTOR_NAMES`) for per-neuron taus (ms, float64)."""
    tau_mem, tau_syn = taus["tau_mem"], taus["tau_syn"]
    alpha_mem, alpha_syn, syn_gain = exact_decays(tau_mem, tau_syn, dt, xp)
    threshold = 0.0 * tau_mem + (params.threshold if params.spiking else math.inf)
    return [alpha_mem, alpha_syn, syn_gain, threshold, tau_mem]


def integrate(v, i, a, p):
    """Exact decay over one step."""
    return p[ALPHA_MEM] * v + p[SYN_GAIN] * i, p[ALPHA_SYN] * i, a


def margin(v, i, a, p):
    """Distance above threshold; the neuron spikes when it is >= 0."""
    return v - p[THRESHOLD]


def reset(v, i, a, s, s_reset, p):
    """Reset to 0 where s_reset = 1."""
    return v * (1.0 - s_reset), i, a


def spike_values(v, i, a, p):
    """Recorded at a spike: the synaptic current (the second value is unused)."""
    return i, a


def adjoint_integrate(lv, li, la, p):
    """Transpose of :func:`integrate` (one step backwards in time)."""
    return p[ALPHA_MEM] * lv, p[ALPHA_SYN] * li + p[SYN_GAIN] * lv, la


def jump_denominator(isyn, extra, p):
    """tau_mem dV/dt just before the spike: I_k - theta (clipped by the driver)."""
    return isyn / p[ALPHA_SYN] - p[THRESHOLD]


def jump(lv, li, la, isyn, extra, dldt, denom, p):
    """EventProp jump of the adjoints at a spike with timing sensitivity ``dldt``."""
    i_k = isyn / p[ALPHA_SYN]
    return (lv * i_k - p[TAU_MEM] * dldt) / denom, li, la


def pseudo_derivative(v, i, a, dh, p):
    """e-prop pseudo-derivative (Bellec et al. 2020): the surrogate derivative ``dh`` at
    the margin, divided by the threshold."""
    return dh / p[THRESHOLD]


def eligibility_step(ev, ei, ea, psi, s, p):
    """One step of the e-prop eligibility vector (ev, ei) = d(V, I)/dw of a synapse.

    :func:`integrate` is linear, so the eligibility vector decays by the same map as the
    state; the eligibility trace is e = psi * ev (the margin's derivative is ev); the reset
    with the spike s held fixed (its gradient is stopped, as in BPTT) zeroes ev.
    """
    ev = p[ALPHA_MEM] * ev + p[SYN_GAIN] * ei      # integrate's map (self-contained:
    ei = p[ALPHA_SYN] * ei                         # compiled code calls no Python helper)
    e = psi * ev
    return ev * (1.0 - s), ei, ea, e


def nir_node(params: LIFParams, size: int, nir):
    """NIR ``CubaLIF`` (``CubaLI`` for a readout), times in seconds. NIR's
    tau_syn dI/dt = -I + w_in S gives a jump of w_in w / tau_syn per Dirac of weight w, so
    ``w_in = tau_syn`` makes it spikeforge's I += w; r = 1, v_leak = v_reset = 0."""
    def full(value: float) -> np.ndarray:
        return np.full(size, float(value))

    tau_syn, tau_mem = full(params.tau_syn / 1e3), full(params.tau_mem / 1e3)
    common = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=full(1.0), v_leak=full(0.0),
                  w_in=tau_syn.copy())
    if not params.spiking:
        return nir.CubaLI(**common)
    return nir.CubaLIF(**common, v_threshold=full(params.threshold), v_reset=full(0.0))


MODEL = NeuronModel(
    title="current-based LIF",
    name="lif",
    params_type=LIFParams,
    factor_names=FACTOR_NAMES,
    factors=factors,
    n_spike_values=1,
    features=frozenset({"spiking", "readout", "recurrent", "delays", "per_neuron_tau",
                        "train_tau", "eventprop", "bptt", "nir", "brian2", "nest", "eprop"}),
    integrate=integrate,
    margin=margin,
    reset=reset,
    spike_values=spike_values,
    adjoint_integrate=adjoint_integrate,
    jump_denominator=jump_denominator,
    jump=jump,
    source_files=(__file__,),
    nir_node=nir_node,
    pseudo_derivative=pseudo_derivative,
    eligibility_step=eligibility_step,
)
