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
