"""Compile a generic driver for one neuron model: the engine's only code generator.

The drivers in :mod:`event_loop` and :mod:`delay_loop` are plain Python functions that
call a neuron model's step maths through the global names ``model_integrate``,
``model_margin``, ``model_reset``, ``model_spike_values``, ``model_adjoint_integrate``,
``model_jump_denominator``, ``model_jump``, ``factor_column`` (a neuron's column of
the factor table as a tuple) and the constant ``N_SPIKE_VALUES``, and
through the template helpers listed in ``event_loop.TEMPLATE_HELPERS`` (and in the
template's own module's ``TEMPLATE_HELPERS``, if it has one). Optional maths a model
leaves None (the EventProp jump, the e-prop ``pseudo_derivative`` and
``eligibility_step``) are simply not bound.
:func:`specialise` makes a copy of a driver whose globals bind those names to the
model's functions (compiled by Numba and inlined), and compiles it.

Numba's on-disk cache keys a function by its qualified name and source file, so each
copy gets a name that carries the model and a hash of the model's source files and of
the driver's module: editing a model recompiles its kernels, and two models never share
a cache entry.
"""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Callable
from functools import cache
from pathlib import Path

from numba import njit

from spikeforge.engine import event_loop
from spikeforge.neurons.base import NeuronModel

MATHS = ("integrate", "margin", "reset", "spike_values", "adjoint_integrate",
         "jump_denominator", "jump", "pseudo_derivative", "eligibility_step")


def copy_function(template: Callable, name: str, glob: dict) -> Callable:
    """A copy of ``template`` named ``name`` with globals ``glob``."""
    code = template.__code__.replace(co_name=name, co_qualname=name)
    function = types.FunctionType(code, glob, name, template.__defaults__)
    function.__module__ = template.__module__
    function.__doc__ = template.__doc__
    return function


def factor_column_function(n_factors: int) -> Callable:
    """Plain Python ``factor_column(table, j)``: neuron j's factors as a tuple of scalars
    (a tuple, not the view ``table[:, j]``: a view per neuron and step costs a reference
    count and blocks vectorisation, about 3x slower). Compile it for the target."""
    items = ", ".join(f"table[{k}, j]" for k in range(n_factors))
    namespace: dict = {}
    exec(f"def factor_column(table, j):\n    return ({items},)\n", namespace)  # noqa: S102
    return namespace["factor_column"]


@cache
def _compiled_maths(model: NeuronModel) -> dict[str, Callable]:
    """The model's step functions compiled for scalars, and the drivers' template helpers
    bound to them (all inlined into the drivers)."""
    glob = {f"model_{name}": njit(inline="always", fastmath=True)(getattr(model, name))
            for name in MATHS if getattr(model, name) is not None}
    glob["N_SPIKE_VALUES"] = model.n_spike_values
    glob["factor_column"] = njit(inline="always")(
        factor_column_function(len(model.factor_names)))
    for name in event_loop.TEMPLATE_HELPERS:
        helper = getattr(event_loop, name)
        bound = copy_function(helper, f"{name}__{model.name}", {**helper.__globals__, **glob})
        glob[name] = njit(inline="always", fastmath=True)(bound)
    return glob


@cache
def _module_helpers(module_name: str, model: NeuronModel) -> dict[str, Callable]:
    """The ``TEMPLATE_HELPERS`` of a template's own module (other than
    :mod:`event_loop`), bound to the model like the shared ones; a helper may call the
    helpers listed before it."""
    module = sys.modules[module_name]
    names = () if module is event_loop else getattr(module, "TEMPLATE_HELPERS", ())
    glob = dict(_compiled_maths(model))
    for name in names:
        helper = getattr(module, name)
        bound = copy_function(helper, f"{name}__{model.name}", {**helper.__globals__, **glob})
        glob[name] = njit(inline="always", fastmath=True)(bound)
    return {name: glob[name] for name in names}


def _source_tag(model: NeuronModel, template: Callable) -> str:
    digest = hashlib.sha256()
    files = [*model.source_files, event_loop.__file__,
             sys.modules[template.__module__].__file__]
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:12]


@cache
def specialise(template: Callable, model: NeuronModel, parallel: bool = True) -> Callable:
    """``template`` compiled (Numba, cached on disk) with ``model``'s maths bound in."""
    name = f"{template.__name__}__{model.name}_{_source_tag(model, template)}"
    function = copy_function(template, name, {**template.__globals__, **_compiled_maths(model),
                                      **_module_helpers(template.__module__, model)})
    return njit(cache=True, parallel=parallel, fastmath=True)(function)
