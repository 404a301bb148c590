"""``spikeforge train-ann`` and ``spikeforge convert``: the ANN->SNN conversion route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

AsJson = Annotated[bool, typer.Option("--json", help="Last stdout line: JSON result.")]
DataDir = Annotated[Path | None, typer.Option(help="Folder with the dataset files (mnist; "
                                                        "default: the download cache).")]


def _emit(result: dict, as_json: bool) -> None:
    table = result.pop("table", None)
    if as_json:
        if table:
            print(table)
        print(json.dumps(result))
        return
    if table:
        print(table)
    for key, value in result.items():
        if key not in ("per_method", "scales"):
            print(f"{key}: {value}")


def train_ann(
    data: Annotated[str, typer.Option(help="Image dataset: digits or mnist.")] = "digits",
    arch: Annotated[str, typer.Option(help="Architecture: mlp or cnn.")] = "mlp",
    hidden: Annotated[str, typer.Option(help="Hidden layer sizes, comma separated.")] = "128",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Model file (default runs/ann-<data>.pt).")
                   ] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Train a ReLU ANN (torch) on an image dataset and save MODEL.pt for `convert`."""
    from spikeforge.convert.api import train_ann_file
    from spikeforge.errors import SpikeforgeError

    try:
        sizes = tuple(int(v) for v in hidden.split(",") if v.strip())
    except ValueError as exc:
        raise SpikeforgeError(f"--hidden {hidden!r} must be comma-separated integers, "
                              "e.g. 128,64") from exc
    if epochs < 1 or any(s < 1 for s in sizes):
        raise SpikeforgeError("--epochs and --hidden sizes must be positive integers")
    path = out or Path("runs") / f"ann-{data}-{arch}.pt"

    def log(row: dict) -> None:
        if not as_json:
            print(f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  "
                  f"val {row['val_accuracy']:.4f}")

    _emit(train_ann_file(data, path, arch, sizes, epochs, seed, data_dir, log), as_json)


def convert(
    model: Annotated[Path, typer.Argument(help="MODEL.pt written by `spikeforge train-ann`.")],
    data: Annotated[str, typer.Option(help="Image dataset: digits or mnist.")] = "digits",
    method: Annotated[str, typer.Option(help="rate, ttfs, fs, fs-fit (or all).")] = "rate",
    steps: Annotated[int | None, typer.Option(
        help="Total time steps (default: rate 256, ttfs 64 x stages, fs/fs-fit 8 x stages).")
    ] = None,
    percentile: Annotated[float, typer.Option(
        help="Activation percentile for threshold normalisation.")] = 99.9,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default runs/convert-<data>-<method>).")] = None,
    data_dir: DataDir = None,
    threads: Annotated[int, typer.Option(help="CPU threads (0: torch default).")] = 0,
    as_json: AsJson = False,
) -> None:
    """Convert a trained ANN to an integrate-and-fire SNN; accuracy vs latency on test."""
    from spikeforge.convert.api import convert_file
    from spikeforge.errors import SpikeforgeError

    if steps is not None and steps < 1:
        raise SpikeforgeError("--steps must be a positive number of time steps")
    _emit(convert_file(model, data, method, steps, percentile, out, data_dir,
                       threads=threads), as_json)


def register(app: typer.Typer) -> None:
    """Add ``train-ann`` and ``convert`` to the CLI."""
    app.command("train-ann")(train_ann)
    app.command("convert")(convert)
