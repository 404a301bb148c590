"""Cheap trial objectives for sweep tests, run by spawned worker processes (kept in a
light module so that each worker starts fast)."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path


def fake_objective(payload):
    """Accuracy is a smooth function of the parameters; no training."""
    lr = payload["params"].get("train.lr", 0.01)
    hidden = payload["params"].get("model.hidden", [8])[0]
    value = 1.0 - abs(math.log10(lr) + 2.0) / 4.0 - 0.001 * hidden
    run_dir = Path(payload["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "attempts.txt", "a") as handle:
        handle.write(f"{os.getpid()}\n")
    return {"state": "complete", "val_accuracy": value, "test_accuracy": value - 0.01}


def crashing_objective(payload):
    """Trial 1 is killed (SIGKILL) on its first attempt, trial 2 raises once."""
    run_dir = Path(payload["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    tries = run_dir / "tries"
    count = int(tries.read_text()) if tries.exists() else 0
    tries.write_text(str(count + 1))
    if payload["number"] == 1 and count == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    if payload["number"] == 2 and count < 1:
        raise RuntimeError(f"simulated failure {count + 1}")
    return fake_objective(payload)


def always_failing(payload):
    raise ValueError("this trial can never work")


def sleeper(payload):
    time.sleep(payload["seconds"])
    return {"slept": payload["seconds"]}


def slow_objective(payload):
    """1.5 seconds per trial, and a marker per attempt, to kill a coordinator mid-sweep."""
    time.sleep(1.5)
    return fake_objective(payload)
