"""Adaptive LIF (ALIF): LIF whose threshold rises after every spike.

Equations (dimensionless, times in ms)::

    tau_m V' = -V + I,   tau_s I' = -I,   tau_a A' = -A
    spike when V >= theta + beta A;  then V <- 0 and A <- A + 1

Adjoint derivation. State x = (V, I, A), spike condition f(x) = V - theta - beta A = 0,
jump x+ = T(x-) = (0, I, A + 1). Let D = dL/dt_k be the spike's timing sensitivity
through its consumers. A shift dt_k of the spike changes the post-spike state by
(dT/dx xdot- - xdot+) dt_k = (-I/tau_m, 0, 1/tau_a) dt_k, and
dt_k = -(grad f . dx-) / (grad f . xdot-) with grad f = (1, 0, -beta) and

    tau_m grad f . xdot- = I - theta - beta A- + beta A- tau_m / tau_a   (=: tau_m Q)

Requiring lam- . dx- = lam+ . dx+ + D dt_k for all dx- gives, with
B = -lam_V+ I / tau_m + lam_A+ / tau_a + D:

    lam_V- = (lam_V+ I - lam_A+ tau_m / tau_a - tau_m D) / (tau_m Q)
    lam_I- = lam_I+
    lam_A- = lam_A+ - beta lam_V-

For beta = 0 this is exactly the LIF jump (:mod:`spikeforge.neurons.lif`); as there, I
is the current at the start of the crossing step. Between events the adjoints evolve by
the transposed step map (A decays with alpha_adapt = exp(-dt / tau_adapt)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons import lif
from spikeforge.neurons.base import NeuronModel

ALPHA_MEM, ALPHA_SYN, SYN_GAIN, THRESHOLD, TAU_MEM = range(5)
ALPHA_ADAPT, BETA, TAU_ADAPT = 5, 6, 7
FACTOR_NAMES = (*lif.FACTOR_NAMES, "alpha_adapt", "beta", "tau_adapt")


@dataclass(frozen=True)
class ALIFParams(lif.LIFParams):
    """Adaptive LIF: LIF plus a threshold adaptation variable A (dimensionless)::

        tau_adapt dA/dt = -A          on an own spike: A += 1
        spike when V >= threshold + beta * A

    Attributes (besides :class:`~spikeforge.neurons.lif.LIFParams`):
        tau_adapt: adaptation time constant in ms (> dt).
        beta: adaptation strength (>= 0; 0 gives plain LIF dynamics).
    """

    tau_adapt: float = 200.0
    beta: float = 0.2

    def validate(self, dt: float, where: str = "layer") -> None:
        super().validate(dt, where)
        if not self.spiking:
            raise SpikeforgeError(f"{where}: an adaptive LIF neuron must be spiking")
        tau = self.tau_adapt
        if not (isinstance(tau, int | float) and math.isfinite(tau) and tau > dt):
            raise SpikeforgeError(
                f"{where}: tau_adapt must be a number of ms larger than dt={dt}, got {tau!r}; "
                f"set it to e.g. 200.0"
            )
        if not (isinstance(self.beta, int | float) and math.isfinite(self.beta)
                and self.beta >= 0):
            raise SpikeforgeError(
                f"{where}: adaptation strength beta must be >= 0, got {self.beta!r}; "
                f"set it to e.g. 0.2"
            )


def factors(params: ALIFParams, dt: float, taus: dict, xp) -> list:
    """Factor-table rows (see :data:`FACTOR_NAMES`)."""
    rows = lif.factors(params, dt, taus, xp)
    ones = 1.0 + 0.0 * taus["tau_mem"]
    tau_adapt = params.tau_adapt * ones
    return [*rows, xp.exp(-dt / tau_adapt), params.beta * ones, tau_adapt]


def integrate(v, i, a, p):
    """Exact decay over one step (A decays with its own time constant)."""
    return p[ALPHA_MEM] * v + p[SYN_GAIN] * i, p[ALPHA_SYN] * i, p[ALPHA_ADAPT] * a


def margin(v, i, a, p):
    """Distance above the adapted threshold theta + beta A."""
    return v - (p[THRESHOLD] + p[BETA] * a)


def reset(v, i, a, s, s_reset, p):
    """V <- 0 and A <- A + 1 at a spike."""
    return v * (1.0 - s_reset), i, a + s


def spike_values(v, i, a, p):
    """Recorded at a spike: the synaptic current and A before its jump."""
    return i, a


def adjoint_integrate(lv, li, la, p):
    """Transpose of :func:`integrate`."""
    return p[ALPHA_MEM] * lv, p[ALPHA_SYN] * li + p[SYN_GAIN] * lv, p[ALPHA_ADAPT] * la


def jump_denominator(isyn, a_k, p):
    """tau_m Q (see the module docstring), clipped by the driver."""
    return (isyn / p[ALPHA_SYN] - p[THRESHOLD] - p[BETA] * a_k
            + p[BETA] * a_k * (p[TAU_MEM] / p[TAU_ADAPT]))


def jump(lv, li, la, isyn, a_k, dldt, denom, p):
    """EventProp jump of (lam_V, lam_I, lam_A) at a spike."""
    i_k = isyn / p[ALPHA_SYN]
    jumped = (lv * i_k - la * (p[TAU_MEM] / p[TAU_ADAPT]) - p[TAU_MEM] * dldt) / denom
    return jumped, li, la - p[BETA] * jumped


def pseudo_derivative(v, i, a, dh, p):
    """e-prop pseudo-derivative: the surrogate derivative ``dh`` at the margin divided by
    the base threshold (Bellec et al. 2020)."""
    return dh / p[THRESHOLD]


def eligibility_step(ev, ei, ea, psi, s, p):
    """One step of the e-prop eligibility vector (ev, ei, ea) = d(V, I, A)/dw.

    Decay by the (linear) :func:`integrate`; trace e = psi (ev - beta ea) (the margin's
    derivative); then the reset with the spike s held fixed: ev <- ev (1 - s), and the
    adaptation jump A += spike adds the spike's derivative: ea <- ea + e (the adaptation
    eligibility vector of Bellec et al.).
    """
    ev = p[ALPHA_MEM] * ev + p[SYN_GAIN] * ei      # integrate's map (self-contained:
    ei = p[ALPHA_SYN] * ei                         # compiled code calls no Python helper)
    ea = p[ALPHA_ADAPT] * ea
    e = psi * (ev - p[BETA] * ea)
    return ev * (1.0 - s), ei, ea + e, e


MODEL = NeuronModel(
    title="adaptive threshold (ALIF)",
    name="alif",
    params_type=ALIFParams,
    factor_names=FACTOR_NAMES,
    factors=factors,
    n_spike_values=2,
    features=frozenset({"spiking", "recurrent", "per_neuron_tau", "train_tau", "eventprop",
                        "bptt", "eprop"}),
    integrate=integrate,
    margin=margin,
    reset=reset,
    spike_values=spike_values,
    adjoint_integrate=adjoint_integrate,
    jump_denominator=jump_denominator,
    jump=jump,
    source_files=(__file__, lif.__file__),
    pseudo_derivative=pseudo_derivative,
    eligibility_step=eligibility_step,
)
