"""Per-neuron (heterogeneous) and trainable membrane / synaptic time constants.

A layer with ``tau_spread > 0`` draws every neuron's tau_mem and tau_syn at
initialisation from U[tau (1 - spread), tau (1 + spread)] (ms; torch's RNG, so
``torch.manual_seed`` makes it reproducible). With ``train_tau=True`` they become
trainable parameters. Both are stored as log(tau) vectors ``log_tau_mem``,
``log_tau_syn`` [N] (a buffer when fixed, a parameter when trained: tau stays positive
whatever the optimiser does). Layers with one shared tau store nothing extra, so their
state dicts are unchanged.

Trainable taus need BPTT (autograd through the exact decay factors). EventProp
handles heterogeneous fixed taus: its kernels already take per-neuron decay arrays.

A layer may hold further per-neuron parameters of its model (adLIF's learned a, b and
tau_adapt, :class:`spikeforge.nn.AdLIF`): it defines ``extra_neuron_vectors()``, a dict
of float64 [N] tensors that join the time constants in the ``taus`` dict the model's
``factors`` reads, on every path (engine table, torch/CUDA table, BPTT).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spikeforge.engine.api import NeuronArrays
from spikeforge.model.neurons import LIFParams, check_tau_spread
from spikeforge.neurons import model_of

TAU_NAMES = ("log_tau_mem", "log_tau_syn")


def setup_time_constants(module: nn.Module, params: LIFParams, size: int, spread: float,
                         trainable: bool, dt: float, where: str) -> None:
    """Give ``module`` per-neuron log-tau vectors when heterogeneous or trainable."""
    check_tau_spread(params, spread, dt, where)
    module.tau_spread, module.train_tau = float(spread), bool(trainable)
    if spread == 0 and not trainable:
        return
    dtype = torch.get_default_dtype()
    for name, tau in zip(TAU_NAMES, (params.tau_mem, params.tau_syn), strict=True):
        factors = 1.0 + spread * (2.0 * torch.rand(size, dtype=torch.float64) - 1.0)
        values = torch.log(tau * factors).to(dtype)
        if trainable:
            module.register_parameter(name, nn.Parameter(values))
        else:
            module.register_buffer(name, values)


def has_per_neuron_taus(module: nn.Module) -> bool:
    return getattr(module, "log_tau_mem", None) is not None


def extra_vectors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The layer's further per-neuron model parameters (``extra_neuron_vectors()``,
    float64 [N]; empty for layers without them)."""
    extra = getattr(module, "extra_neuron_vectors", None)
    return extra() if extra is not None else {}


def tau_vectors(module: nn.Module, params: LIFParams, size: int,
                device: torch.device) -> dict[str, torch.Tensor]:
    """The time constants the parameters define (``tau_mem``, ``tau_syn``) and the
    layer's :func:`extra_vectors` as float64 [N] tensors, times in ms (differentiable
    when trainable)."""
    if has_per_neuron_taus(module):
        taus = {"tau_mem": module.log_tau_mem.double().exp(),
                "tau_syn": module.log_tau_syn.double().exp()}
    else:
        taus = {name: torch.full((size,), float(getattr(params, name)), dtype=torch.float64,
                                 device=device)
                for name in ("tau_mem", "tau_syn") if hasattr(params, name)}
    return {**taus, **extra_vectors(module)}


def neuron_arrays(module: nn.Module, params: LIFParams, size: int, dt: float,
                  dtype: np.dtype) -> NeuronArrays:
    """The engine's view of the population (model + factor table, homogeneous or not)."""
    vectors = {name: value.detach().cpu().numpy()
               for name, value in extra_vectors(module).items()}
    if not has_per_neuron_taus(module):
        return NeuronArrays.from_params(params, size, dt, dtype, vectors=vectors)
    tau_mem = module.log_tau_mem.detach().cpu().double().exp().numpy()
    tau_syn = module.log_tau_syn.detach().cpu().double().exp().numpy()
    return NeuronArrays.from_params(params, size, dt, dtype, tau_mem, tau_syn, vectors)


def torch_table(module: nn.Module, params: LIFParams, size: int, dt: float,
                like: torch.Tensor) -> torch.Tensor:
    """The factor table [K, N] as a tensor in ``like``'s dtype and device, computed in
    float64 from the model's own formula (bit-identical to the engine's NumPy table) and
    differentiable w.r.t. trainable taus."""
    rows = model_of(params).factors(params, dt, tau_vectors(module, params, size, like.device),
                                    torch)
    return torch.stack(rows).to(like.dtype)
