"""Names of the datasets the CLI and configs accept."""

from __future__ import annotations

from collections.abc import Callable

from spikeforge.data import digits, yinyang
from spikeforge.data.base import DatasetSplits
from spikeforge.errors import SpikeforgeError

DATASETS: dict[str, Callable[..., DatasetSplits]] = {
    "digits": digits.load,
    "yinyang": yinyang.load,
}


def load_dataset(name: str, dt: float) -> DatasetSplits:
    """Load a bundled dataset by name with simulation step ``dt`` (ms)."""
    if name not in DATASETS:
        raise SpikeforgeError(
            f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}"
        )
    return DATASETS[name](dt=dt)
