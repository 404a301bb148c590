"""spikeforge: spiking neural networks trained with exact event-based gradients (EventProp).

Subpackages are attributes of the package, imported on first use (``import spikeforge``
stays cheap: it loads neither torch nor numba)::

    import spikeforge
    layer = spikeforge.nn.LIF(700, 256)
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType

from spikeforge.errors import SpikeforgeError

try:
    __version__ = version("spikeforge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["SpikeforgeError", "__version__"]

_LAZY_SUBPACKAGES = ("convert", "data", "energy", "engine", "experiments", "export", "model",
                     "neurons", "nn", "train")
"""Subpackages reachable as ``spikeforge.<name>`` without importing them first (those of
them present in this installation)."""


def __getattr__(name: str) -> ModuleType:
    """Import the subpackage ``spikeforge.<name>`` on first access."""
    if name in _LAZY_SUBPACKAGES:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # a dependency is missing: say which
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    here = Path(__file__).parent
    present = [name for name in _LAZY_SUBPACKAGES if (here / name / "__init__.py").is_file()]
    return sorted(set(globals()) | set(present))
