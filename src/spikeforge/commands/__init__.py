"""CLI command groups, one module per topic; each exposes ``register(app)``."""

from pathlib import Path
from typing import Annotated

import typer

SET_HELP = ("Set one config field by its dotted path, section.key=value (e.g. "
            "train.lr=0.005, model.hidden=[256], data.dt=0.5 for a 0.5 ms step); "
            "repeat --set for several fields.")
"""Help text of every command's ``--set`` option."""

MODEL_FILE_DATA = Annotated[str | None, typer.Option(
    "--data", help="Dataset for a model file (e.g. digits, shd). Default: none.")]
"""``--data`` of commands that take a run folder or a model file."""
MODEL_FILE_DATA_DIR = Annotated[Path | None, typer.Option(
    "--data-dir", help="Folder with the dataset files for --data. Default: the dataset's "
    "cache.")]
"""``--data-dir`` of commands that take a run folder or a model file."""
