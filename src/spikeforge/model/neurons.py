"""Neuron models: the single source of truth for their equations and parameters.

LIF with exponential-current synapse (dimensionless units, V_rest = 0)::

    tau_mem dV/dt = -V + I
    tau_syn dI/dt = -I          presynaptic spike of weight w at t:  I += w
    V >= threshold  ->  spike, V <- 0

The leaky-integrator (LI) readout follows the same equations without a threshold.
Each time step of length dt is integrated exactly (no forward Euler): with the
synaptic current held by its own exponential decay over the step,

    V(t+dt) = alpha_mem V(t) + syn_gain I(t)
    I(t+dt) = alpha_syn I(t)

where alpha_x = exp(-dt/tau_x) and
syn_gain = tau_syn/(tau_syn - tau_mem) (alpha_syn - alpha_mem)  (dt/tau_mem alpha_mem if equal).
The EventProp adjoint between steps is the transpose of this map, so forward and
backward kernels read the same three numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.errors import SpikeforgeError


@dataclass(frozen=True)
class StepDecays:
    """Per-step exact integration factors for one population (all dimensionless)."""

    alpha_mem: float
    alpha_syn: float
    syn_gain: float


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
            value = getattr(self, name)
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
        if self.spiking and not (math.isfinite(self.threshold) and self.threshold > 0):
            raise SpikeforgeError(
                f"{where}: threshold must be positive, got {self.threshold!r}; set it to e.g. 1.0"
            )

    def decays(self, dt: float) -> StepDecays:
        """Exact per-step factors for step length ``dt`` (ms)."""
        alpha_mem = math.exp(-dt / self.tau_mem)
        alpha_syn = math.exp(-dt / self.tau_syn)
        if abs(self.tau_mem - self.tau_syn) < 1e-9 * self.tau_mem:
            syn_gain = dt / self.tau_mem * alpha_mem
        else:
            syn_gain = self.tau_syn / (self.tau_syn - self.tau_mem) * (alpha_syn - alpha_mem)
        return StepDecays(alpha_mem=alpha_mem, alpha_syn=alpha_syn, syn_gain=syn_gain)


@dataclass(frozen=True)
class ALIFParams(LIFParams):
    """Adaptive LIF: LIF plus a threshold adaptation variable A (dimensionless)::

        tau_adapt dA/dt = -A          on an own spike: A += 1
        spike when V >= threshold + beta * A

    Attributes (besides :class:`LIFParams`):
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

    def adapt_decay(self, dt: float) -> float:
        """Exact per-step decay exp(-dt / tau_adapt) of the adaptation variable."""
        return math.exp(-dt / self.tau_adapt)


def check_tau_spread(params: LIFParams, spread: float, dt: float, where: str) -> None:
    """Raise :class:`SpikeforgeError` unless per-neuron taus drawn from
    U[tau (1 - spread), tau (1 + spread)] all stay above dt (spread in [0, 1))."""
    if not (isinstance(spread, int | float) and math.isfinite(spread) and 0 <= spread < 1):
        raise SpikeforgeError(
            f"{where}: tau_spread must be in [0, 1) (relative half-width of the uniform "
            f"tau distribution), got {spread!r}"
        )
    for name in ("tau_mem", "tau_syn"):
        low = getattr(params, name) * (1 - spread)
        if spread > 0 and low <= dt:
            raise SpikeforgeError(
                f"{where}: with tau_spread={spread} the smallest {name} would be {low:g} ms, "
                f"not above dt={dt} ms; reduce tau_spread or dt"
            )
