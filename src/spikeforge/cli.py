"""``spikeforge`` command line: a thin layer over the Python API."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from spikeforge import __version__
from spikeforge.errors import SpikeforgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train spiking neural networks with exact event-based gradients.")


def _version(value: bool) -> None:
    if value:
        print(f"spikeforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """spikeforge: EventProp training, evaluation and export of SNNs."""


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


@app.command()
def train(
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    data: Annotated[str | None, typer.Option(
        help="Dataset name (digits, yinyang, shd, ssc, mnist).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder with the dataset files (shd, ssc, mnist).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Number of epochs.")] = None,
    method: Annotated[str | None, typer.Option(
        help="Training method: eventprop (exact gradients), bptt (surrogate) or stdp "
             "(unsupervised).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/<data>).")] = None,
    device: Annotated[str | None, typer.Option(
        help="auto (CUDA when present), cpu, cuda or cuda:N (sets train.device).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: section.key=value")
                    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Last stdout line: JSON result.")
                       ] = False,
) -> None:
    """Train a network (EventProp) and write a run folder; re-running resumes it."""
    from spikeforge.experiments.config import load_config, parse_override
    from spikeforge.experiments.runner import train_run

    overrides = dict(parse_override(item) for item in (set_ or []))
    flags = {"data.name": data, "train.epochs": epochs, "seed": seed, "train.method": method,
             "train.device": device,
             "data.data_dir": str(data_dir.resolve()) if data_dir is not None else None}
    overrides.update({key: value for key, value in flags.items() if value is not None})
    resolved = load_config(config, overrides)
    run_dir = out or Path("runs") / resolved.data.name
    _emit(train_run(resolved, run_dir), as_json)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `spikeforge train`.")],
    device: Annotated[str | None, typer.Option(
        help="auto, cpu, cuda or cuda:N (default: the run's train.device).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Last stdout line: JSON result.")
                       ] = False,
) -> None:
    """Evaluate a trained run's final model on its test split."""
    from spikeforge.experiments.runner import evaluate_run

    _emit(evaluate_run(run_dir, device), as_json)


# Further commands live in one module each under spikeforge.commands; every module
# exposes ``register(app)``. Append a module name here to add its commands.
COMMAND_MODULES: tuple[str, ...] = ("sweep", "convert", "export")


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"spikeforge.commands.{name}").register(app)


def _with_checks(command: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    """``callback`` preceded by the option checks of :mod:`spikeforge.commands.checks`."""

    @functools.wraps(callback)
    def checked(*args: Any, **kwargs: Any) -> Any:
        from spikeforge.commands.checks import check_options

        check_options(command, kwargs)
        return callback(*args, **kwargs)

    return checked


def _add_option_checks() -> None:
    for info in app.registered_commands:
        if info.callback is not None:
            name = info.name or info.callback.__name__.replace("_", "-")
            info.callback = _with_checks(name, info.callback)


_register_commands()
_add_option_checks()


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        app()
    except SpikeforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
