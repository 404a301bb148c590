"""Export trained networks to NIR, Brian2 and NEST, import NIR, and check agreement.

Run folders are read by :func:`spikeforge.experiments.loading.load_run` (or
``load_any`` for a run folder or a model file); everything here takes the resulting
:class:`LoadedModel`.
"""

from spikeforge.export.network_io import LoadedModel, load_model_file, save_model_file
from spikeforge.export.nir_import import from_nir, read_nir
from spikeforge.export.nir_io import to_nir, write_nir

__all__ = [
    "LoadedModel",
    "from_nir",
    "load_model_file",
    "read_nir",
    "save_model_file",
    "to_nir",
    "write_nir",
]
