"""Adaptive LIF with an adaptation *current* coupled to the membrane (adLIF; Bittar &
Garner 2022, Baronig et al. 2025).

Equations (dimensionless, threshold units, times in ms)::

    tau_mem   dV/dt = -V + I - w
    tau_syn   dI/dt = -I                 presynaptic spike of weight u:  I += u
    tau_adapt dw/dt =  a V - w
    V >= theta  ->  spike:  V <- 0,  w <- w + b

``a`` couples w to the sub-threshold voltage (a > 0: a resonator that damps and can
oscillate; a < 0: an amplifying coupling), ``b`` is the spike-triggered jump of w. The
linear system (V, I, w) is stable for every a > -1: the (V, w) block has trace
-(1/tau_mem + 1/tau_adapt) < 0 and determinant (1 + a) / (tau_mem tau_adapt), positive
iff a > -1 (complex eigenvalues, a damped oscillation, once
a > (tau_adapt - tau_mem)^2 / (4 tau_mem tau_adapt)). ``b >= 0`` keeps the adaptation
a subtractive (adapting) current.

Discretisation: exact. Each step of length dt applies the matrix exponential
``M = expm(A dt)`` of the linear system x' = A x, x = (V, I, w), computed per neuron in
:func:`step_matrix` (the *factor table* holds its seven non-zero entries). The
symplectic-Euler step of SE-adLIF (Baronig et al.) is a first-order approximation of
the same M (see ``docs/adlif-eventprop.md``); the exact step needs no stability bound
on dt, a or tau_adapt and its EventProp adjoint is the exact transpose.

Adjoint derivation (as in :mod:`spikeforge.neurons.alif`). State x = (V, I, w), spike
condition f(x) = V - theta = 0 (grad f = (1, 0, 0)), jump x+ = T(x-) = (0, I, w + b).
With D = dL/dt_k the spike's timing sensitivity through its consumers, a shift dt_k
changes the post-spike state by (dT/dx xdot- - xdot+) dt_k with, at V- = theta,

    tau_m Vdot- = I - w - theta,     tau_m Vdot+ = I - w - b,
    tau_w (wdot- - wdot+) = (a theta - w) - (-(w + b)) = a theta + b,

so dT/dx xdot- - xdot+ = (-Vdot+, 0, (a theta + b) / tau_w), and
dt_k = -dV- / Vdot-. Requiring lam- . dx- = lam+ . dx+ + D dt_k for all dx-:

    lam_V- = (lam_V+ (I - w - b) - lam_w+ (tau_m / tau_w)(a theta + b) - tau_m D)
             / (I - w - theta)
    lam_I- = lam_I+
    lam_w- = lam_w+

For a = b = 0 (w stays 0) this is the LIF jump (:mod:`spikeforge.neurons.lif`); as
there, I is the current at the start of the crossing step (the recorded current divided
by alpha_syn); w is the recorded value before its jump (it changes by O(dt / tau_adapt)
over a step). Between events the adjoints evolve by M transposed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.errors import SpikeforgeError
from spikeforge.neurons import lif
from spikeforge.neurons.base import NeuronModel

M_VV, M_VI, M_VW, ALPHA_SYN, M_WV, M_WI, M_WW, THRESHOLD, TAU_MEM, TAU_ADAPT, A, B = range(12)
FACTOR_NAMES = ("m_vv", "m_vi", "m_vw", "alpha_syn", "m_wv", "m_wi", "m_ww", "threshold",
                "tau_mem", "tau_adapt", "a", "b")

A_MIN = -1.0
"""a must exceed this: at a = -1 the (V, w) system has a zero eigenvalue (no leak)."""

TAYLOR_DEGREE = 12
SCALED_NORM = 0.25
"""Matrix exponential by scaling and squaring: A dt is scaled by 2^-s until its
infinity norm is at most SCALED_NORM, where the degree-12 Taylor polynomial is exact to
~1e-18 relative."""


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


ADAPTATION_INITS = ("fixed", "uniform")
"""How a layer's per-neuron a, b, tau_adapt start (see :class:`AdLIFParams`)."""


@dataclass(frozen=True)
class AdLIFParams(lif.LIFParams):
    """adLIF: LIF plus an adaptation current w (same units as V and I)::

        tau_adapt dw/dt = a V - w          on an own spike: w += b
        tau_mem dV/dt = -V + I - w

    Attributes (besides :class:`~spikeforge.neurons.lif.LIFParams`):
        tau_adapt: adaptation time constant tau_w in ms (> dt).
        a: sub-threshold coupling of w to V (dimensionless, > -1; 0: spike-triggered
            adaptation only).
        b: jump of w per spike (threshold units, >= 0; a = b = 0 is plain LIF).
        learn_adaptation: give every neuron its own a, b and tau_adapt, trainable by
            surrogate-gradient BPTT within the ranges below (initialised to a, b,
            tau_adapt; with EventProp they are fixed per-neuron values).
        a_range, b_range, tau_adapt_range: (low, high) bounds of the learned values
            (a_range low >= -1, b_range low >= 0, tau_adapt_range low > dt, in ms); the
            initial values must lie strictly inside.
        adaptation_init: ``"fixed"`` (every neuron starts at a, b, tau_adapt) or
            ``"uniform"`` (every neuron draws its own a, b and tau_adapt uniformly from
            the ranges above when the layer is built: a heterogeneous population, fixed
            under EventProp, the starting point of learning with ``learn_adaptation``).
    """

    tau_adapt: float = 100.0
    a: float = 0.5
    b: float = 0.5
    learn_adaptation: bool = False
    a_range: tuple[float, float] = (-1.0, 2.0)
    b_range: tuple[float, float] = (0.0, 2.0)
    tau_adapt_range: tuple[float, float] = (20.0, 300.0)
    adaptation_init: str = "fixed"

    @property
    def per_neuron(self) -> bool:
        """Whether every neuron has its own a, b, tau_adapt (learned or drawn)."""
        return self.learn_adaptation or self.adaptation_init == "uniform"

    def __post_init__(self) -> None:
        for name in ("a_range", "b_range", "tau_adapt_range"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def validate(self, dt: float, where: str = "layer") -> None:
        super().validate(dt, where)
        if not self.spiking:
            raise SpikeforgeError(f"{where}: an adLIF neuron must be spiking")
        tau = self.tau_adapt
        if not (_number(tau) and tau > dt):
            raise SpikeforgeError(
                f"{where}: tau_adapt (tau_w) = {tau!r} is outside its allowed range: it must "
                f"be a number of ms larger than dt = {dt} ms; set it to e.g. 100.0")
        if not (_number(self.a) and self.a > A_MIN):
            raise SpikeforgeError(
                f"{where}: a = {self.a!r} is outside its allowed range a > {A_MIN:g} (at "
                f"a <= -1 the coupled V-w system is unstable); set it to e.g. 0.5")
        if not (_number(self.b) and self.b >= 0):
            raise SpikeforgeError(
                f"{where}: b = {self.b!r} is outside its allowed range b >= 0 (the "
                f"spike-triggered jump of w); set it to e.g. 0.5")
        if self.adaptation_init not in ADAPTATION_INITS:
            raise SpikeforgeError(
                f"{where}: adaptation_init = {self.adaptation_init!r} is not one of "
                f"{ADAPTATION_INITS}; use 'fixed' or 'uniform'")
        if self.per_neuron:
            drawn = self.adaptation_init == "uniform"
            for name, low_min, value in (("a", A_MIN, self.a), ("b", 0.0, self.b),
                                         ("tau_adapt", dt, tau)):
                _check_range(getattr(self, f"{name}_range"), f"{name}_range", low_min,
                             None if drawn else value, name, where)


def _check_range(bounds, field: str, low_min: float, value: float | None, name: str,
                 where: str) -> None:
    ok = (isinstance(bounds, tuple) and len(bounds) == 2 and all(_number(x) for x in bounds)
          and bounds[0] < bounds[1])
    if not ok or bounds[0] < low_min or (name == "tau_adapt" and bounds[0] <= low_min):
        relation = "> dt =" if name == "tau_adapt" else ">="
        raise SpikeforgeError(
            f"{where}: {field} = {bounds!r} is outside its allowed range: it must be "
            f"(low, high) with low < high and low {relation} {low_min:g}")
    if value is not None and not bounds[0] < value < bounds[1]:
        raise SpikeforgeError(
            f"{where}: {name} = {value!r} is outside its allowed range {field} = "
            f"({bounds[0]:g}, {bounds[1]:g}) (a learned value starts strictly inside); "
            f"change {name} or {field}")


def _largest(values) -> float:
    """The largest entry of a NumPy array or torch tensor as a number (outside autograd:
    the number of squarings is a piecewise-constant choice, not part of the gradient)."""
    return float((values.detach() if hasattr(values, "detach") else values).max())


def _matmul(x: list, y: list) -> list:
    return [[x[r][0] * y[0][c] + x[r][1] * y[1][c] + x[r][2] * y[2][c] for c in range(3)]
            for r in range(3)]


def step_matrix(tau_mem, tau_syn, tau_adapt, a, dt: float) -> list:
    """``expm(A dt) - 1`` (as rows of a 3x3 nested list of [N] arrays) for the linear
    system of (V, I, w) with per-neuron tau_mem, tau_syn, tau_adapt (ms) and a (NumPy
    arrays or torch tensors, float64), by scaling and squaring: the Taylor polynomial of
    ``X = A dt / 2^s`` and ``s`` squarings, all on E = M - 1 (E <- 2E + E^2) so that
    near-identity steps (small dt) keep their relative precision. Plain arithmetic:
    the same operations on NumPy and torch (bit-identical tables; differentiable)."""
    zero = 0.0 * tau_mem
    # dt * (1 / tau), not dt / tau: torch divides a number by a tensor through its
    # reciprocal, so only this spelling gives NumPy's bits
    inv_m, inv_s, inv_w = dt * (1.0 / tau_mem), dt * (1.0 / tau_syn), dt * (1.0 / tau_adapt)
    x = [[-inv_m, inv_m, -inv_m], [zero, -inv_s, zero], [a * inv_w, zero, -inv_w]]
    norm = max(_largest(3.0 * inv_m), _largest(inv_s), _largest((1.0 + abs(a)) * inv_w))
    squarings = max(0, math.ceil(math.log2(norm / SCALED_NORM))) if norm > 0 else 0
    x = [[entry / 2.0 ** squarings for entry in row] for row in x]
    eye = [[1.0 if r == c else 0.0 for c in range(3)] for r in range(3)]
    poly = [[eye[r][c] + x[r][c] / TAYLOR_DEGREE for c in range(3)] for r in range(3)]
    for k in range(TAYLOR_DEGREE - 1, 1, -1):  # Horner: 1 + X/k (1 + X/(k+1) (...))
        product = _matmul(x, poly)
        poly = [[eye[r][c] + product[r][c] / k for c in range(3)] for r in range(3)]
    e = _matmul(x, poly)
    for _ in range(squarings):
        square = _matmul(e, e)
        e = [[2.0 * e[r][c] + square[r][c] for c in range(3)] for r in range(3)]
    return e


def factors(params: AdLIFParams, dt: float, taus: dict, xp) -> list:
    """Factor-table rows (see :data:`FACTOR_NAMES`). ``taus`` holds per-neuron
    ``tau_mem``/``tau_syn`` and, for layers with per-neuron adaptation, ``a``, ``b`` and
    ``tau_adapt`` (float64 [N] of ``xp``); missing ones come from ``params``."""
    tau_mem, tau_syn = taus["tau_mem"], taus["tau_syn"]
    ones = 1.0 + 0.0 * tau_mem
    tau_adapt = taus.get("tau_adapt", params.tau_adapt * ones)
    a, b = taus.get("a", params.a * ones), taus.get("b", params.b * ones)
    e = step_matrix(tau_mem, tau_syn, tau_adapt, a, dt)
    return [1.0 + e[0][0], e[0][1], e[0][2], 1.0 + e[1][1], e[2][0], e[2][1], 1.0 + e[2][2],
            params.threshold * ones, tau_mem, tau_adapt, a, b]


def integrate(v, i, w, p):
    """Exact evolution over one step: (V, I, w) <- M (V, I, w)."""
    return (p[M_VV] * v + p[M_VI] * i + p[M_VW] * w, p[ALPHA_SYN] * i,
            p[M_WV] * v + p[M_WI] * i + p[M_WW] * w)


def margin(v, i, w, p):
    """Distance above threshold; the neuron spikes when it is >= 0."""
    return v - p[THRESHOLD]


def reset(v, i, w, s, s_reset, p):
    """V <- 0 where s_reset = 1, w <- w + b s."""
    return v * (1.0 - s_reset), i, w + p[B] * s


def spike_values(v, i, w, p):
    """Recorded at a spike: the synaptic current and w before its jump."""
    return i, w


def adjoint_integrate(lv, li, lw, p):
    """Transpose of :func:`integrate` (one step backwards in time)."""
    return (p[M_VV] * lv + p[M_WV] * lw, p[ALPHA_SYN] * li + p[M_VI] * lv + p[M_WI] * lw,
            p[M_VW] * lv + p[M_WW] * lw)


def jump_denominator(isyn, w, p):
    """tau_mem dV/dt just before the spike, I_k - w - theta (clipped by the driver)."""
    return isyn / p[ALPHA_SYN] - w - p[THRESHOLD]


def jump(lv, li, lw, isyn, w, dldt, denom, p):
    """EventProp jump of (lam_V, lam_I, lam_w) at a spike (module docstring)."""
    after = isyn / p[ALPHA_SYN] - w - p[B]  # tau_mem dV/dt just after the spike
    coupling = p[TAU_MEM] / p[TAU_ADAPT] * (p[A] * p[THRESHOLD] + p[B])
    return (lv * after - lw * coupling - p[TAU_MEM] * dldt) / denom, li, lw


MODEL = NeuronModel(
    title="adaptation-current LIF (adLIF)",
    name="adlif",
    params_type=AdLIFParams,
    factor_names=FACTOR_NAMES,
    factors=factors,
    n_spike_values=2,
    features=frozenset({"spiking", "recurrent", "per_neuron_tau", "train_tau", "eventprop",
                        "bptt"}),
    integrate=integrate,
    margin=margin,
    reset=reset,
    spike_values=spike_values,
    adjoint_integrate=adjoint_integrate,
    jump_denominator=jump_denominator,
    jump=jump,
    source_files=(__file__, lif.__file__),
)
