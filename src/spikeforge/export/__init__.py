"""Export trained networks to NIR, Brian2 and NEST, import NIR, and check agreement."""

from spikeforge.export.network_io import (
    LoadedModel,
    load_any,
    load_model_file,
    load_run,
    save_model_file,
)
from spikeforge.export.nir_io import from_nir, read_nir, to_nir, write_nir

__all__ = [
    "LoadedModel",
    "from_nir",
    "load_any",
    "load_model_file",
    "load_run",
    "read_nir",
    "save_model_file",
    "to_nir",
    "write_nir",
]
