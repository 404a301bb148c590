"""Checkpoints that cannot execute code on load (torch ``weights_only``), written atomically.

Checkpoints are device-independent: tensors are written from the CPU and read onto the
CPU; the caller's ``load_state_dict`` copies them onto the network's (and optimizer's)
device, so a run trained on a GPU resumes on a CPU and the other way round."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from spikeforge.atomic import atomic_path
from spikeforge.errors import SpikeforgeError


def on_cpu(state: Any) -> Any:
    """``state`` with every tensor (in nested dicts, lists, tuples) copied to the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {key: on_cpu(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(on_cpu(value) for value in state)
    return state


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, dicts, lists) to ``path`` atomically,
    every tensor from the CPU (:func:`on_cpu`)."""
    with atomic_path(path) as tmp:
        torch.save(on_cpu(state), tmp)


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
