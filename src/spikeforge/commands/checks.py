"""Command-line option checks that run before a command does any work.

Each check takes the command's parsed options (a dict by parameter name) and raises
:class:`SpikeforgeError` with one sentence naming the option and the fix. ``CHECKS`` maps
a command name to its checks; :mod:`spikeforge.cli` applies them to every command.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from spikeforge.errors import SpikeforgeError

Check = Callable[[dict[str, Any]], None]


def _at_least(option: str, name: str, low: int, optional: bool = True) -> Check:
    def check(options: dict[str, Any]) -> None:
        value = options.get(name)
        if value is None and optional:
            return
        if value is None or value < low:
            raise SpikeforgeError(f"{option} must be >= {low} (got {value})")
    return check


def _parent_exists(option: str, name: str) -> Check:
    def check(options: dict[str, Any]) -> None:
        path = options.get(name)
        if path is not None and not Path(path).absolute().parent.is_dir():
            raise SpikeforgeError(f"{option} {path}: folder {Path(path).parent} does not "
                                  "exist; create it or choose another path")
    return check


def _export_source(options: dict[str, Any]) -> None:
    source, out = options.get("run_dir"), options.get("out")
    if source is not None and Path(source).is_file() and out is None:
        raise SpikeforgeError(f"{source} is a model file, not a run folder: pass --out for "
                              "the exported file or folder")


def _seed(options: dict[str, Any]) -> None:
    seed = options.get("seed")
    if seed is not None and not 0 <= seed <= 2**32 - 1:
        raise SpikeforgeError(f"--seed must be in 0 .. {2**32 - 1} (got {seed})")


CHECKS: dict[str, tuple[Check, ...]] = {
    "train": (_seed, _at_least("--epochs", "epochs", 1)),
    "train-ann": (_seed,),
    "sweep": (_seed, _at_least("--trials", "trials", 1), _at_least("--workers", "workers", 1),
              _at_least("--max-retries", "max_retries", 0)),
    "cv": (_at_least("--workers", "workers", 1), _at_least("--max-retries", "max_retries", 0)),
    "energy": (_at_least("--threads", "threads", 1), _at_least("--samples", "samples", 1),
               _at_least("--repeats", "repeats", 1)),
    "export": (_at_least("--samples", "samples", 1), _export_source,
               _parent_exists("--out", "out")),
    "import-nir": (_parent_exists("--out", "out"),),
    "convert": (_at_least("--threads", "threads", 0),),
}


def check_options(command: str, options: dict[str, Any]) -> None:
    """Run the checks registered for ``command`` on its parsed ``options``."""
    for check in CHECKS.get(command, ()):
        check(options)
