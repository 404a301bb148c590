"""Datasets as sparse spike events, encoders and batching."""

from spikeforge.data.base import DatasetSplits, SpikeDataset, iterate_batches
from spikeforge.data.registry import DATASETS, load, load_dataset
from spikeforge.data.tonic_interop import from_tonic

__all__ = ["DATASETS", "DatasetSplits", "SpikeDataset", "from_tonic", "iterate_batches", "load",
           "load_dataset"]
