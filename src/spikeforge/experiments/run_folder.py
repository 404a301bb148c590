"""Run folders: config, metadata, metrics (JSONL), checkpoints, results and plots.

Layout of ``OUT/``::

    config.yaml      the resolved config (reproduce with --config OUT/config.yaml)
    run.json         seed, package version, python/torch versions, start time
    metrics.jsonl    one JSON object per finished epoch
    checkpoint.pt    latest epoch (model + optimizer), for resuming
    model.pt         final weights; results.json; *.png plots
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from spikeforge import __version__
from spikeforge.atomic import write_text_atomic
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import RunConfig, dump_config

CONFIG, METRICS, CHECKPOINT, MODEL, RESULTS = (
    "config.yaml", "metrics.jsonl", "checkpoint.pt", "model.pt", "results.json",
)  # fmt: skip


def prepare_run_folder(out: Path, config: RunConfig) -> bool:
    """Create ``out`` (atomically) or check it can be resumed. Returns True if resuming."""
    out = Path(out)
    if out.exists():
        existing = out / CONFIG
        if not existing.is_file():
            raise SpikeforgeError(
                f"output folder {out} exists but is not a spikeforge run; choose another --out"
            )
        if existing.read_text() != dump_config(config):
            raise SpikeforgeError(
                f"{out} holds a run with a different config; use a new --out to start a new run"
            )
        return True
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        (staging / CONFIG).write_text(dump_config(config))
        meta = {
            "seed": config.seed,
            "spikeforge_version": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (staging / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return False


def read_metrics(out: Path) -> list[dict[str, Any]]:
    path = Path(out) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(out: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl with ``rows`` (atomically)."""
    write_text_atomic(Path(out) / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
