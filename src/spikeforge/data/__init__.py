"""Datasets as sparse spike events, encoders and batching."""

from spikeforge.data.base import DatasetSplits, SpikeDataset, iterate_batches
from spikeforge.data.registry import DATASETS, load, load_dataset

__all__ = ["DATASETS", "DatasetSplits", "SpikeDataset", "iterate_batches", "load",
           "load_dataset"]
