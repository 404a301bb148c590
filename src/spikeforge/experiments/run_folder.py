"""Run folders: config, metadata, metrics (JSONL), checkpoints, results and plots.

Layout of ``OUT/``::

    config.yaml      the resolved config (reproduce with --config OUT/config.yaml)
    run.json         seed, package version, python/torch versions, start time
    metrics.jsonl    one JSON object per finished epoch
    checkpoint.pt    latest epoch (model + optimizer), for resuming
    model.pt         final weights; results.json; *.png plots
    .lock            held by the process writing the run (``flock``)
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml

from spikeforge import __version__
from spikeforge.atomic import (
    TEMP_MARK,
    fsync_dir,
    make_temp_dir,
    remove_stale_temps,
    write_text_atomic,
)
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import RunConfig, config_differences, dump_config
from spikeforge.fault_injection import fault_point
from spikeforge.folder_lock import FolderLock

CONFIG, METRICS, CHECKPOINT, MODEL, RESULTS = (
    "config.yaml", "metrics.jsonl", "checkpoint.pt", "model.pt", "results.json",
)  # fmt: skip


STAGING_MAX_AGE_S = 60.0
"""Staging folders of a creator killed mid-way are removed once this old (seconds)."""


def _metadata(config: RunConfig) -> dict[str, Any]:
    return {
        "seed": config.seed,
        "spikeforge_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _create(out: Path, config: RunConfig) -> bool:
    """Create ``out`` with its config and run.json in one rename; False if it exists."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(out.parent, out.name)
    try:
        (staging / CONFIG).write_text(dump_config(config))
        (staging / "run.json").write_text(json.dumps(_metadata(config), indent=2) + "\n")
        fault_point("run-folder:staged")
        try:
            os.replace(staging, out)  # onto nothing or an empty folder
        except OSError:
            if not out.is_dir():
                raise
            return False  # another process created it first
        fsync_dir(out.parent)
        fault_point("run-folder:renamed")
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_old_staging(out: Path) -> None:
    """Staging folders of ``out`` left in its parent by a creator that was killed."""
    now = time.time()
    for entry in out.parent.glob(f".{out.name}{TEMP_MARK}*"):
        with contextlib.suppress(OSError):
            if now - entry.stat().st_mtime > STAGING_MAX_AGE_S:
                shutil.rmtree(entry, ignore_errors=True)


def check_resumable(out: Path, config: RunConfig) -> None:
    """Raise :class:`SpikeforgeError` unless run folder ``out`` holds ``config`` (compared
    semantically: see :func:`~spikeforge.experiments.config.semantic_config`)."""
    try:
        saved = yaml.safe_load((out / CONFIG).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpikeforgeError(f"{out / CONFIG} is unreadable ({type(exc).__name__}); "
                              "use a new --out") from exc
    if not isinstance(saved, dict):
        raise SpikeforgeError(f"{out / CONFIG} is not a config mapping; use a new --out")
    try:
        differ = config_differences(saved, config)
    except SpikeforgeError as exc:
        raise SpikeforgeError(f"{out} cannot be resumed: {exc}; use a new --out") from exc
    if differ:
        shown = ", ".join(differ[:4]) + (" ..." if len(differ) > 4 else "")
        raise SpikeforgeError(f"{out} holds a run with a different config ({shown}); use a "
                              "new --out to start a new run")


@contextmanager
def open_run_folder(out: Path, config: RunConfig) -> Iterator[bool]:
    """Create run folder ``out`` (atomically) or check it can be resumed, and hold its
    lock while the ``with`` body runs. Yields True if resuming an existing run.

    Raises :class:`SpikeforgeError` if ``out`` is not a run, holds another config, or is
    in use by another process.
    """
    out = Path(out)
    created = _create(out, config)
    if not (out / CONFIG).is_file():
        raise SpikeforgeError(
            f"output folder {out} exists but is not a spikeforge run; choose another --out")
    with FolderLock(out, "run"):
        remove_stale_temps(out)
        _remove_old_staging(out)
        if not created:
            check_resumable(out, config)
        yield not created


def prepare_run_folder(out: Path, config: RunConfig) -> bool:
    """Create ``out`` or check it can be resumed (without keeping it locked); True if
    resuming. Prefer :func:`open_run_folder`, which holds the lock."""
    with open_run_folder(out, config) as resuming:
        return resuming


def read_metrics(out: Path) -> list[dict[str, Any]]:
    path = Path(out) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(out: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl with ``rows`` (atomically)."""
    write_text_atomic(Path(out) / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
