"""LIF neuron with instantaneous (delta) synapses: NIR's ``LIF`` node, snnTorch's
``Leaky``, Norse's current-free LIF.

Equations (dimensionless, times in ms)::

    tau_mem dV/dt = -V + sum_k w_k delta(t - t_k)    an input spike of weight w raises V by w
    V >= threshold  ->  spike, V <- 0

On the step grid an input that arrives at the end of step n raises V there and step n+1
decays it, so (the drivers collect a step's input in ``i``)::

    V <- alpha_mem (V + I),   I <- 0,   alpha_mem = exp(-dt / tau_mem)

V jumps over the threshold only at input arrivals, never by a smooth crossing, so spike
times are not differentiable functions of the weights and EventProp has no gradient to
offer: the model trains with surrogate-gradient BPTT and runs inference on every engine
path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons.base import NeuronModel
from spikeforge.neurons.lif import check_tau

ALPHA_MEM, THRESHOLD = range(2)
FACTOR_NAMES = ("alpha_mem", "threshold")


@dataclass(frozen=True)
class DeltaLIFParams:
    """Parameters of a delta-synapse LIF population.

    Attributes:
        tau_mem: membrane time constant in ms (> dt).
        threshold: firing threshold (dimensionless, > 0).
        spiking: always True (a delta-synapse readout would be a leaky sum of inputs).
    """

    tau_mem: float = 10.0
    threshold: float = 1.0
    spiking: bool = True

    def validate(self, dt: float, where: str = "layer") -> None:
        """Raise :class:`SpikeforgeError` unless simulable with time step dt (ms)."""
        check_tau(self.tau_mem, "tau_mem", dt, where)
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise SpikeforgeError(
                f"{where}: threshold must be positive, got {self.threshold!r}; set it to e.g. 1.0"
            )
        if not self.spiking:
            raise SpikeforgeError(f"{where}: a delta-synapse LIF neuron must be spiking")


def factors(params: DeltaLIFParams, dt: float, taus: dict, xp) -> list:
    """Factor-table rows (see :data:`FACTOR_NAMES`)."""
    tau_mem = taus["tau_mem"]
    return [xp.exp(-dt / tau_mem), 0.0 * tau_mem + params.threshold]


def integrate(v, i, a, p):
    """The step's input raises V, then V decays over the step."""
    return p[ALPHA_MEM] * (v + i), 0.0 * i, a


def margin(v, i, a, p):
    """Distance above threshold; the neuron spikes when it is >= 0."""
    return v - p[THRESHOLD]


def reset(v, i, a, s, s_reset, p):
    """Reset to 0 where s_reset = 1."""
    return v * (1.0 - s_reset), i, a


def spike_values(v, i, a, p):
    """Recorded at a spike (for statistics; no adjoint uses them)."""
    return v, a


def adjoint_integrate(lv, li, la, p):
    """Transpose of :func:`integrate`."""
    return p[ALPHA_MEM] * lv, p[ALPHA_MEM] * lv, la


def nir_node(params: DeltaLIFParams, size: int, nir):
    """NIR ``LIF`` (times in seconds): tau dv/dt = (v_leak - v) + r I with Dirac input of
    area w raises v by r w / tau, so ``r = tau`` makes it spikeforge's V += w."""
    tau = np.full(size, params.tau_mem / 1e3)
    return nir.LIF(tau=tau, r=tau.copy(), v_leak=np.zeros(size),
                   v_threshold=np.full(size, float(params.threshold)), v_reset=np.zeros(size))


MODEL = NeuronModel(
    title="delta-synapse LIF",
    name="delta_lif",
    params_type=DeltaLIFParams,
    factor_names=FACTOR_NAMES,
    factors=factors,
    n_spike_values=1,
    features=frozenset({"spiking", "recurrent", "delays", "bptt", "nir"}),
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
