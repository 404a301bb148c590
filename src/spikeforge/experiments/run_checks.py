"""Checks a run makes before and during training: usable splits and finite numbers."""

from __future__ import annotations

import math
from typing import Any

import torch

from spikeforge.data import DatasetSplits
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import MAX_STEPS


def check_splits(splits: DatasetSplits) -> None:
    """Raise :class:`SpikeforgeError` for an empty split or a window of too many steps."""
    for part, fix in (("train", "add training samples"),
                      ("val", "raise data.val_fraction or add training samples"),
                      ("test", "add test samples")):
        dataset = getattr(splits, part)
        if len(dataset) == 0:
            name = {"train": "training", "val": "validation", "test": "test"}[part]
            raise SpikeforgeError(f"dataset {splits.name}: the {name} split is empty; {fix}")
    steps = splits.train.n_steps
    if steps > MAX_STEPS:
        raise SpikeforgeError(
            f"dataset {splits.name}: {steps} time steps per sample (at most {MAX_STEPS}); "
            "raise data.dt or lower data.max_time_ms")


def _bad_number(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def first_non_finite(row: dict[str, Any], network: torch.nn.Module) -> str | None:
    """Name and value of the first NaN/infinite metric in ``row`` or parameter of
    ``network`` (``"val_loss = nan"``), or None when everything is finite."""
    for key, value in row.items():
        if _bad_number(value):
            return f"{key} = {value}"
    for name, param in network.named_parameters():
        finite = torch.isfinite(param.detach())
        if not bool(finite.all()):
            bad = param.detach()[~finite].flatten()[0].item()
            return f"parameter {name} = {bad}"
    return None


def check_epoch(epoch: int, row: dict[str, Any], network: torch.nn.Module) -> None:
    """Raise :class:`SpikeforgeError` if epoch ``epoch`` (1-based) produced a non-finite
    metric or parameter; the caller has not saved anything of this epoch yet."""
    what = first_non_finite(row, network)
    if what is None:
        return
    kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "nothing was saved"
    raise SpikeforgeError(
        f"epoch {epoch}: {what} (not finite); training stopped and {kept}; lower train.lr "
        "or set train.grad_clip, then start a new run")
