"""The digits main job on an idle machine and with one core kept busy by another process.

Each run is ``spikeforge train --json --out TMP`` (the default digits config) in a fresh
subprocess; the CPU hog is a second process spinning ``while True: pass``, started
before the job and stopped after it. Conditions: idle / hog x ``train.threads`` = 0
(automatic: the free cores, :mod:`spikeforge.threads`) and = all cores (what 0 meant
before). Runs alternate between conditions; prints one JSON object per run, then the
median ``train_seconds`` per condition and the hog/idle ratios.

    python benchmarks/oversubscription.py [--repeats 3] [--threads 0,2] [--wait-idle 600]

``--wait-idle S`` waits (up to S seconds) before each run until other processes use less
than 0.3 cores (a 1 s ``/proc/stat`` sample), for a shared machine; each row records the
load seen just before it started.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _wait_idle(limit_s: float) -> float:
    """Wait until other processes keep < 0.3 cores busy (at most ``limit_s``); the last
    sampled load in cores."""
    from spikeforge.threads import affinity_cpus, busy_from_sample

    deadline = time.monotonic() + limit_s
    while True:
        busy = busy_from_sample(affinity_cpus(), seconds=1.0) or 0.0
        if busy < 0.3 or time.monotonic() > deadline:
            return busy
        time.sleep(5.0)


def _train(threads: int, hog: bool) -> dict:
    spinner = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None)
    try:
        time.sleep(1.0 if hog else 0.0)  # let the hog take its core
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "spikeforge.cli", "train", "--json", "--out",
                 str(Path(tmp) / "run"), "--set", f"train.threads={threads}"],
                capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t0
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    warned = "CPU cores busy" in proc.stderr
    return {"threads_setting": threads, "hog": hog, "train_seconds": result["train_seconds"],
            "wall_s": wall, "test_accuracy": result["test_accuracy"],
            "oversubscription_warning": warned, "loadavg_1min": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default=f"0,{os.cpu_count()}",
                        help="comma-separated train.threads settings")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="wait up to this many s for an idle machine before each run")
    args = parser.parse_args(argv)
    settings = [int(t) for t in args.threads.split(",")]
    rows = []
    for repeat in range(args.repeats):
        for threads in settings:
            for hog in (False, True):
                busy = _wait_idle(args.wait_idle) if args.wait_idle > 0 else None
                row = {"repeat": repeat, "busy_cores_before": busy, **_train(threads, hog)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    for threads in settings:
        median = {hog: float(np.median([r["train_seconds"] for r in rows
                                        if r["threads_setting"] == threads
                                        and r["hog"] == hog])) for hog in (False, True)}
        print(json.dumps({"threads_setting": threads, "median_idle_s": median[False],
                          "median_hog_s": median[True],
                          "hog_over_idle": median[True] / median[False]}), flush=True)


if __name__ == "__main__":
    main()
