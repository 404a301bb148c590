"""Names of the datasets the CLI and configs accept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from spikeforge.data import aedat, delay_task, digits, mnist, nmnist, shd, yinyang
from spikeforge.data.base import DatasetSplits
from spikeforge.data.delays import DelayLines
from spikeforge.errors import SpikeforgeError

DATASETS: dict[str, Callable[..., DatasetSplits]] = {
    "digits": digits.load,
    "yinyang": yinyang.load,
    "shd": shd.load,
    "ssc": shd.load_ssc,
    "mnist": mnist.load,
    "delay_order": delay_task.load,
    "nmnist": nmnist.load,
    "dvsgesture": aedat.load,
}
FILE_DATASETS = ("shd", "ssc", "mnist", "nmnist", "dvsgesture")
"""Datasets read from files (``data_dir``, or downloaded into the cache folder)."""


def load_dataset(
    name: str, dt: float = 1.0, data_dir: Path | str | None = None, **options: Any
) -> DatasetSplits:
    """Load a dataset by name with simulation step ``dt`` (ms, default 1).

    File datasets (shd, ssc, mnist, nmnist, dvsgesture) read ``data_dir`` (default: the
    download cache); ``options`` go to the dataset's loader (see
    ``spikeforge.data.shd.load``).
    """
    if name not in DATASETS:
        raise SpikeforgeError(
            f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}"
        )
    if name in FILE_DATASETS:
        return DATASETS[name](dt=dt, data_dir=data_dir, **options)
    if data_dir is not None:
        raise SpikeforgeError(f"dataset {name!r} is built in and takes no --data-dir")
    return DATASETS[name](dt=dt, **options)


def load(
    name: str, data_dir: Path | str | None = None, dt: float = 1.0, **options: Any
) -> DatasetSplits:
    """Train / validation / test splits of dataset ``name``, binned at ``dt`` ms.

    Each split is a :class:`~spikeforge.data.SpikeDataset`: a ``torch`` ``Dataset``
    whose ``collate`` is a ``DataLoader`` ``collate_fn`` yielding ``(Events, labels)``
    batches that spikeforge layers read directly (``Events.to_tensor()`` gives the
    dense ``[batch, time, channels]`` tensor). ``data_dir`` is where the file datasets
    (shd, ssc, mnist, nmnist, dvsgesture) live (default: the download cache); ``options``
    go to the dataset's loader, e.g. ``max_time_ms`` for shd or ``t_max_ms`` for digits.

    Example::

        splits = spikeforge.data.load("digits")
        loader = torch.utils.data.DataLoader(splits.train, batch_size=32,
                                             shuffle=True, collate_fn=splits.train.collate)
    """
    return load_dataset(name, dt, data_dir, **options)


def load_data(data: Any) -> DatasetSplits:
    """Splits described by a run config's ``data`` section (``DataConfig``): the dataset,
    its file options and delay-line input expansion."""
    options: dict[str, Any] = {}
    if data.name in ("shd", "ssc"):
        options = {"max_time_ms": data.max_time_ms, "channel_stride": data.channel_stride,
                   "n_channels": data.n_channels, "val_fraction": data.val_fraction,
                   "val_split": data.val_split, "download": data.download}
    elif data.name == "mnist":
        options = {"encoding": data.encoding, "download": data.download}
    elif data.name in ("nmnist", "dvsgesture"):
        options = {"downsample": data.channel_stride, "val_fraction": data.val_fraction,
                   "download": data.download}
        if data.name == "dvsgesture":
            options["val_split"] = data.val_split
        if data.max_time_ms is not None:
            options["max_time_ms"] = data.max_time_ms
    splits = load_dataset(data.name, data.dt, data.data_dir, **options)
    if data.delay_lines is not None:
        delays = DelayLines(data.delay_lines.copies, data.delay_lines.spacing_ms)
        splits = DatasetSplits(splits.name, splits.train.with_delay_lines(delays),
                               splits.val.with_delay_lines(delays),
                               splits.test.with_delay_lines(delays))
    return splits
