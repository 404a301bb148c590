"""Compile a CUDA kernel template for one neuron model: the CUDA counterpart of
:mod:`spikeforge.engine.specialise`.

The templates in :mod:`gpu_loop` call a neuron model's step maths through the same
global names as the CPU drivers (``model_integrate`` ... ``model_jump``,
``factor_column``, ``N_SPIKE_VALUES``) plus ``STATE_DTYPE``, the dtype of the
thread-local state. :func:`gpu_specialise` binds them to the model's own functions
compiled with ``numba.cuda.jit(device=True)`` (the same pure scalar arithmetic the CPU
drivers compile with ``njit``: one source of truth), copies the template with those
globals (as ``specialise`` does: a new function object over the template's code) and
compiles it with ``numba.cuda.jit``. The kernels' device-function helpers (the
``TEMPLATE_HELPERS`` of :mod:`gpu_loop`, shared, and of the template's own module) are
copied into the same globals as the kernel (so Numba's simulator, which swaps the
``cuda`` module in a function's globals for the length of a launch, swaps it for the
helpers too; separate dicts would race between the simulator's threads). Compiled
kernels are kept per (template, model, dtype) for the life of the process.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is first
imported) the same call gives kernels that run on the CPU, which is how the tests check
these kernels against the CPU drivers on machines without a GPU.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache

import numpy as np
from numba import cuda, float32, float64

from spikeforge.engine import gpu_loop
from spikeforge.engine.specialise import copy_function, factor_column_function
from spikeforge.neurons.base import NeuronModel

MATHS = ("integrate", "margin", "reset", "spike_values", "adjoint_integrate",
         "jump_denominator", "jump")
STATE_DTYPES = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}
"""Numba scalar type of the kernels' thread-local state per array dtype."""


@cache
def _device_maths(model: NeuronModel) -> dict[str, object]:
    """The model's step functions as CUDA device functions, and its constants."""
    glob: dict[str, object] = {
        f"model_{name}": cuda.jit(device=True)(getattr(model, name))
        for name in MATHS if getattr(model, name) is not None
    }
    glob["N_SPIKE_VALUES"] = model.n_spike_values
    glob["factor_column"] = cuda.jit(device=True)(
        factor_column_function(len(model.factor_names)))
    return glob


@cache
def gpu_specialise(template: Callable, model: NeuronModel, dtype: np.dtype) -> Callable:
    """``template`` (a kernel of :mod:`gpu_loop` or :mod:`gpu_delay_loop`) compiled by
    ``numba.cuda.jit`` with ``model``'s maths bound in and thread-local state of
    ``dtype`` (float32 or float64); launch it as ``kernel[blocks, threads](...)``."""
    state = STATE_DTYPES[np.dtype(dtype)]
    name = f"{template.__name__}__{model.name}_{np.dtype(dtype).name}"
    glob = {**template.__globals__, **_device_maths(model), "STATE_DTYPE": state}
    module = sys.modules[template.__module__]
    for owner in dict.fromkeys([gpu_loop, module]):
        for helper_name in getattr(owner, "TEMPLATE_HELPERS", ()):
            helper = getattr(owner, helper_name)
            bound = copy_function(helper, f"{helper_name}__{model.name}", glob)
            glob[helper_name] = cuda.jit(device=True)(bound)
    return cuda.jit(copy_function(template, name, glob))
