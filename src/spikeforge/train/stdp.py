"""Unsupervised STDP learning (Diehl & Cook 2015 style), NumPy time loop, no backward pass.

Network: ``n_in`` input channels -> ``n_neurons`` excitatory current-based LIF neurons
(exact per-step decays from :class:`~spikeforge.model.LIFParams`) with lateral inhibition
(winner-take-all), homeostatic adaptive thresholds and per-neuron weight normalisation.

One time step ``t`` (dt ms) of one sample, in this order (the neuron maths and their
order are the engine's: :mod:`spikeforge.neurons.lif` integrates, then the threshold,
then the input of the step arrives):

1. traces decay: ``x_pre *= exp(-dt/tau_plus)``, ``x_post *= exp(-dt/tau_minus)``,
   adaptive threshold ``a *= exp(-dt/tau_theta)``;
2. membrane: the LIF model's exact step (``V = alpha_mem V + syn_gain I``, ``I *= alpha_syn``);
3. neurons with ``V >= threshold + a`` spike; with ``wta`` only the one furthest above
   threshold does. Spiking neurons reset ``V = 0``; every other neuron's ``V`` drops by
   ``inhibition`` per spike (clipped at 0): lateral inhibition;
4. postsynaptic spikes ``j``: potentiation ``w_ij += a_plus * x_pre_i`` (learning), then
   ``x_post_j += 1`` and ``a_j += theta_plus`` (homeostasis);
5. presynaptic spikes ``i``: depression ``w_ij -= a_minus * x_post_j`` (learning), then
   ``x_pre_i += 1`` and ``I_j += w_ij`` (felt from the next step on).

Weights are clipped to ``[0, w_max]``; after each training sample every neuron's incoming
weights are rescaled to sum to ``norm`` (weight normalisation). With all-to-all pairing the
update of one synapse for pre spikes at steps ``t_i`` and post spikes at ``t_j`` is the
closed form ``sum_{i,j} a_plus exp(-(t_j - t_i) dt / tau_plus) [t_j >= t_i]
- a_minus exp(-(t_i - t_j) dt / tau_minus) [t_j < t_i]`` (before clipping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeforge.neurons import lif
from spikeforge.neurons.lif import LIFParams


@dataclass(frozen=True)
class StdpRule:
    """Pair-based additive STDP with exponential traces (time constants in ms)."""

    a_plus: float = 0.01
    a_minus: float = 0.006
    tau_plus: float = 20.0
    tau_minus: float = 20.0
    w_max: float = 1.0

    def decays(self, dt: float) -> tuple[float, float]:
        return math.exp(-dt / self.tau_plus), math.exp(-dt / self.tau_minus)


class PairTraces:
    """Pre/post traces of one layer and the weight updates they drive.

    Args:
        rule: the STDP rule; n_in / n_out: layer sizes; dt: time step in ms.
    """

    def __init__(self, rule: StdpRule, n_in: int, n_out: int, dt: float):
        self.rule = rule
        self.d_plus, self.d_minus = rule.decays(dt)
        self.x_pre = np.zeros(n_in)
        self.x_post = np.zeros(n_out)

    def reset(self) -> None:
        self.x_pre[:] = 0.0
        self.x_post[:] = 0.0

    def decay(self) -> None:
        self.x_pre *= self.d_plus
        self.x_post *= self.d_minus

    def on_pre(self, weight: np.ndarray, pre: np.ndarray, learn: bool = True) -> None:
        """Presynaptic spikes of units ``pre`` (int array): depress ``weight[pre, :]``
        (``[n_in, n_out]``) by ``a_minus x_post``, then bump their traces."""
        if learn and pre.size:
            weight[pre] -= self.rule.a_minus * self.x_post[None, :]
        np.add.at(self.x_pre, pre, 1.0)

    def on_post(self, weight: np.ndarray, post: np.ndarray, learn: bool = True) -> None:
        """Postsynaptic spikes of units ``post``: potentiate ``weight[:, post]`` by
        ``a_plus x_pre``, then bump their traces."""
        if learn and post.size:
            weight[:, post] += self.rule.a_plus * self.x_pre[:, None]
        np.add.at(self.x_post, post, 1.0)


def pair_update(rule: StdpRule, pre_steps: np.ndarray, post_steps: np.ndarray, n_steps: int,
                dt: float, w0: float = 0.0) -> float:
    """Weight change of ONE synapse driven through :class:`PairTraces` by hand-made spike
    trains (step indices), without clipping: the trace implementation the network uses."""
    traces = PairTraces(rule, 1, 1, dt)
    weight = np.full((1, 1), w0)
    pre_set, post_set = set(int(s) for s in pre_steps), set(int(s) for s in post_steps)
    one = np.zeros(1, dtype=np.int64)
    for t in range(n_steps):
        traces.decay()
        if t in pre_set:
            traces.on_pre(weight, one)
        if t in post_set:
            traces.on_post(weight, one)
    return float(weight[0, 0] - w0)


@dataclass
class StdpParams:
    """Network parameters of the STDP layer (see the module docstring).

    ``tau_theta`` in ms (homeostasis time constant); ``norm``: target sum of each neuron's
    incoming weights (``None``: no normalisation).
    """

    n_neurons: int = 100
    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    theta_plus: float = 0.05
    tau_theta: float = 1e5
    inhibition: float = 10.0
    wta: bool = True
    norm: float | None = 8.0


class StdpNetwork:
    """Input -> excitatory LIF layer trained with STDP.

    Attributes:
        weight: ``[n_in, n_neurons]`` float64 in ``[0, w_max]``.
        theta: ``[n_neurons]`` adaptive threshold offsets (homeostasis).
    """

    def __init__(self, n_in: int, params: StdpParams, rule: StdpRule, dt: float, seed: int = 0):
        self.params, self.rule, self.dt, self.n_in = params, rule, dt, n_in
        rng = np.random.default_rng(seed)
        self.weight = rng.uniform(0.0, 0.3 * rule.w_max, size=(n_in, params.n_neurons))
        self.theta = np.zeros(params.n_neurons)
        self.normalise()
        neuron = LIFParams(params.tau_mem, params.tau_syn, params.threshold)
        taus = {"tau_mem": np.full(params.n_neurons, params.tau_mem),
                "tau_syn": np.full(params.n_neurons, params.tau_syn)}
        self.table = np.stack(lif.factors(neuron, dt, taus, np))
        self.d_theta = math.exp(-dt / params.tau_theta)
        self.traces = PairTraces(rule, n_in, params.n_neurons, dt)

    def normalise(self) -> None:
        """Rescale each neuron's incoming weights to sum to ``params.norm``."""
        if self.params.norm is not None:
            sums = self.weight.sum(0, keepdims=True)
            self.weight *= self.params.norm / np.maximum(sums, 1e-12)
            np.clip(self.weight, 0.0, self.rule.w_max, out=self.weight)

    def present(self, steps: np.ndarray, units: np.ndarray, n_steps: int,
                learn: bool) -> tuple[np.ndarray, float]:
        """Run one sample (input spikes at ``steps``/``units``); returns (spike counts
        ``[n_neurons]``, peak of ``V - threshold`` used to break ties of silent samples)."""
        p = self.params
        n = p.n_neurons
        v, cur = np.zeros(n), np.zeros(n)
        counts = np.zeros(n)
        self.traces.reset()
        order = np.argsort(steps, kind="stable")
        steps, units = np.asarray(steps)[order], np.asarray(units)[order]
        bounds = np.searchsorted(steps, np.arange(n_steps + 1))
        peak = np.full(n, -np.inf)
        for t in range(n_steps):
            self.traces.decay()
            self.theta *= self.d_theta
            v, cur, _ = lif.integrate(v, cur, None, self.table)
            margin = v - (p.threshold + self.theta)
            np.maximum(peak, margin, out=peak)
            above = np.flatnonzero(margin >= 0)
            if above.size:
                post = above[[int(np.argmax(margin[above]))]] if p.wta else above
                v -= p.inhibition * post.size
                v[post] = 0.0
                np.maximum(v, 0.0, out=v)
                counts[post] += 1
                self.traces.on_post(self.weight, post, learn)
                if learn:
                    self.weight[:, post] = np.clip(self.weight[:, post], 0.0, self.rule.w_max)
                    self.theta[post] += p.theta_plus
            pre = units[bounds[t] : bounds[t + 1]]
            if pre.size:
                self.traces.on_pre(self.weight, pre, learn)
                if learn:
                    self.weight[pre] = np.clip(self.weight[pre], 0.0, self.rule.w_max)
                cur += self.weight[pre].sum(0)
        if learn:
            self.normalise()
        return counts, peak

    def responses(self, samples, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Spike counts ``[N, n_neurons]`` and peak margins ``[N, n_neurons]`` without
        learning (thresholds frozen)."""
        theta = self.theta.copy()
        counts = np.zeros((len(samples), self.params.n_neurons))
        peaks = np.zeros_like(counts)
        for k, (steps, units) in enumerate(samples):
            counts[k], peaks[k] = self.present(steps, units, n_steps, learn=False)
            self.theta[:] = theta
        return counts, peaks

    def state(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight.copy(), "theta": self.theta.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.weight[:] = np.asarray(state["weight"])
        self.theta[:] = np.asarray(state["theta"])
