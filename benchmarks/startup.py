"""Start-up time of the command line: ``spikeforge --help`` and a bad-config error.

Each command runs ``--repeats`` times (after one warm-up run that fills the OS file
cache) in a fresh process through the installed ``spikeforge`` entry point; the wall
time of each run is measured from outside, and the median is reported.

    python benchmarks/startup.py                      # prints JSON, 5 repeats
    python benchmarks/startup.py --out startup.json --repeats 9

Output: one JSON object ``{"date", "python", "repeats", "commands": {name: {"argv",
"median_s", "times_s", "exit_code"}}}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS: dict[str, list[str]] = {
    "help": ["--help"],
    "bad_config": ["train", "--set", "train.epochs=-1"],
}
"""Name -> arguments of each measured command."""


def entry_point() -> list[str]:
    """The ``spikeforge`` executable next to this interpreter (or on PATH)."""
    local = Path(sys.executable).with_name("spikeforge")
    found = str(local) if local.exists() else shutil.which("spikeforge")
    if found is None:
        raise SystemExit("spikeforge is not installed in this environment")
    return [found]


def time_command(argv: list[str], repeats: int) -> dict:
    """Wall times (s) of ``repeats`` fresh runs of ``argv`` after one warm-up run."""
    subprocess.run(argv, capture_output=True, check=False)
    times, code = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        code = subprocess.run(argv, capture_output=True, check=False).returncode
        times.append(time.perf_counter() - start)
    return {"argv": argv[1:], "median_s": round(statistics.median(times), 3),
            "times_s": [round(t, 3) for t in times], "exit_code": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()
    exe = entry_point()
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "repeats": args.repeats,
        "commands": {name: time_command(exe + argv, args.repeats)
                     for name, argv in COMMANDS.items()},
    }
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
