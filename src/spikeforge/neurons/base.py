"""The neuron-model plug-in interface: what every neuron model states once.

A model is a small object with

* a parameter dataclass (``params_type``) that validates itself;
* ``factor_names``: the rows of its per-neuron *factor table* ``[K, N]`` (exact
  per-step decay factors, threshold, time constants ...) and ``factors()`` that computes
  it from the parameters, ``dt`` and optional per-neuron time constants, on NumPy or
  torch (the same formula for both);
* the maths of one time step and of its EventProp adjoint as pure arithmetic functions
  of the state ``(v, i, a)`` (membrane, synaptic current, one auxiliary variable such
  as threshold adaptation) and a factor table ``p``. The same function runs

    - on scalars inside the compiled CPU drivers (``p`` is one neuron's column
      ``table[:, j]``; the engine compiles it with Numba),
    - on ``[batch, N]`` NumPy arrays (the reference oracle) and torch tensors (the
      CUDA path and surrogate-gradient BPTT, where autograd differentiates it), with
      ``p`` the whole table so that ``p[k]`` is a row ``[N]`` that broadcasts;

* ``features``: what the engine may do with it (dispatch is on these, never on types).

The driver owns everything that is about synapses: input arrival (which adds into the
synaptic current ``i``), recurrent delivery, delays and the timing sensitivity of input
events. The model owns everything that is about the neuron.

Per time step the drivers do, in this order::

    v, i, a = integrate(v, i, a, p)                 exact decay over the step
    s = H(margin(v, i, a, p))                       spike when margin >= 0
    record spike_values(v, i, a, p) at each spike  (what the adjoint jump needs)
    v, i, a = reset(v, i, a, s, s_reset, p)         s in {0, 1}; s_reset = s (detached in BPTT)
    i += input currents of step n                   (driver)

and backwards, per step in reverse, with adjoints ``(lv, li, la)``::

    (inputs' gradients and timing from li)          (driver)
    at each spike:  d = max(jump_denominator(x1, x2, p), min_vdot)
                    lv, li, la = jump(lv, li, la, x1, x2, dldt, d, p)
    lv, li, la = adjoint_integrate(lv, li, la, p)   transpose of integrate

``x1, x2`` are the two per-spike values a model records (``n_spike_values`` says how
many it needs: 1 stores only ``x1``; ``x1`` is the synaptic current at the spike for
every current-based model, ``Events.isyn``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FEATURES = frozenset({"spiking", "readout", "recurrent", "delays", "per_neuron_tau",
                      "train_tau", "eventprop", "bptt", "nir", "brian2", "nest", "eprop"})
"""Feature names a model may declare (see :class:`NeuronModel`)."""


@dataclass(frozen=True)
class NeuronModel:
    """One neuron model, stated once (see the module docstring for the contract).

    Attributes:
        name: short identifier (``"lif"``, ``"alif"``); used in compiled kernel names.
        params_type: the parameter dataclass (has ``validate(dt, where)``).
        factor_names: names of the factor-table rows, in order.
        factors: ``factors(params, dt, taus, xp) -> list of K rows [N]``; ``taus`` maps
            ``"tau_mem"``/``"tau_syn"`` to per-neuron float64 arrays (ms) of ``xp``
            (``numpy`` or ``torch``).
        n_spike_values: how many per-spike values (1 or 2) the adjoint jump needs.
        features: what the model supports (names from :data:`FEATURES`).
        integrate, margin, reset, spike_values, adjoint_integrate, jump_denominator,
            jump: the step maths (pure arithmetic; see the module docstring); the two jump
            functions may be None for a model without the ``"eventprop"`` feature.
        source_files: files whose change must recompile the model's kernels.
        title: a few words for messages (e.g. "adaptive threshold (ALIF)").
        nir_node: ``nir_node(params, size, nir) -> node``: the model as a NIR neuron node
            (times in seconds) for the exporter, such that the incoming ``Linear``
            weights are spikeforge's weights; required with the ``"nir"`` feature.
        pseudo_derivative: ``pseudo_derivative(v, i, a, dh, p) -> psi``: the e-prop
            pseudo-derivative of the spike w.r.t. the margin, from the surrogate
            derivative ``dh`` of the Heaviside evaluated at ``margin(v, i, a, p)``
            (e.g. ``dh / threshold``); required with the ``"eprop"`` feature.
        eligibility_step: ``eligibility_step(ev, ei, ea, psi, s, p) -> (ev, ei, ea, e)``:
            one step of an e-prop eligibility vector (d(v, i, a)/dw of one synapse,
            holding the other neurons' spikes fixed) through ``integrate``, the spike
            (pseudo-derivative ``psi``) and ``reset`` with the actual spike ``s`` in
            {0, 1}; ``e`` is the eligibility trace ds/dw of the step. The driver adds
            the presynaptic input to ``ei`` afterwards, as it does to the state.
            Required with the ``"eprop"`` feature.
    """

    name: str
    params_type: type
    factor_names: tuple[str, ...]
    factors: Callable[..., list[Any]]
    n_spike_values: int
    features: frozenset[str]
    integrate: Callable
    margin: Callable
    reset: Callable
    spike_values: Callable
    adjoint_integrate: Callable
    jump_denominator: Callable | None
    jump: Callable | None
    source_files: tuple[str, ...] = field(default=())
    nir_node: Callable | None = None
    title: str = ""
    pseudo_derivative: Callable | None = None
    eligibility_step: Callable | None = None

    def __post_init__(self) -> None:
        unknown = set(self.features) - FEATURES
        if unknown:
            raise ValueError(f"neuron model {self.name}: unknown features {sorted(unknown)}")
        if self.n_spike_values not in (1, 2):
            raise ValueError(f"neuron model {self.name}: n_spike_values must be 1 or 2")
        if "nir" in self.features and self.nir_node is None:
            raise ValueError(f"neuron model {self.name}: the nir feature needs nir_node")
        if "eventprop" in self.features and (self.jump is None or self.jump_denominator is None):
            raise ValueError(f"neuron model {self.name}: EventProp needs jump and "
                             f"jump_denominator")
        if "eprop" in self.features and (self.pseudo_derivative is None
                                         or self.eligibility_step is None):
            raise ValueError(f"neuron model {self.name}: e-prop needs pseudo_derivative and "
                             f"eligibility_step")

    def supports(self, feature: str) -> bool:
        """Whether the model declares ``feature``."""
        return feature in self.features

    def row(self, name: str) -> int:
        """Index of the factor-table row ``name``."""
        return self.factor_names.index(name)


def exact_decays(tau_mem, tau_syn, dt: float, xp) -> tuple[Any, Any, Any]:
    """Exact per-step factors of a current-based membrane (arrays of ``xp``, float64):

        alpha_mem = exp(-dt / tau_mem),  alpha_syn = exp(-dt / tau_syn),
        syn_gain = tau_syn / (tau_syn - tau_mem) (alpha_syn - alpha_mem)
                   (dt / tau_mem alpha_mem when the two taus are equal),

    so that over one step ``V <- alpha_mem V + syn_gain I`` and ``I <- alpha_syn I`` are
    the exact solution of tau_mem V' = -V + I, tau_syn I' = -I (taus and dt in ms)."""
    alpha_mem = xp.exp(-dt / tau_mem)
    alpha_syn = xp.exp(-dt / tau_syn)
    diff = tau_syn - tau_mem
    equal = xp.abs(diff) < 1e-9 * tau_mem
    safe = xp.where(equal, 1.0 + 0.0 * diff, diff)
    syn_gain = xp.where(equal, dt / tau_mem * alpha_mem, tau_syn / safe * (alpha_syn - alpha_mem))
    return alpha_mem, alpha_syn, syn_gain
