"""Checkpoints that cannot execute code on load (torch ``weights_only``), written atomically."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from spikeforge.atomic import atomic_path
from spikeforge.errors import SpikeforgeError


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, dicts, lists) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; unreadable files raise a clear error."""
    path = Path(path)
    if not path.is_file():
        raise SpikeforgeError(f"checkpoint {path} does not exist; train a model first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as exc:
        raise SpikeforgeError(
            f"checkpoint {path} is unreadable or not a spikeforge checkpoint "
            f"({type(exc).__name__}); delete it and retrain"
        ) from exc
    if not isinstance(state, dict) or "model" not in state:
        raise SpikeforgeError(f"checkpoint {path} is not a spikeforge checkpoint")
    return state
