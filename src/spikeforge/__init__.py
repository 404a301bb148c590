"""spikeforge: spiking neural networks trained with exact event-based gradients (EventProp)."""

from importlib.metadata import PackageNotFoundError, version

from spikeforge.errors import SpikeforgeError

try:
    __version__ = version("spikeforge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["SpikeforgeError", "__version__"]
