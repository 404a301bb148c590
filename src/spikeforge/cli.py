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
from spikeforge.commands import MODEL_FILE_DATA, MODEL_FILE_DATA_DIR, SET_HELP
from spikeforge.errors import SpikeforgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
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
    config: Annotated[Path | None, typer.Option(
        help="YAML config file (default: the built-in defaults).")] = None,
    data: Annotated[str | None, typer.Option(
        help="Dataset: digits, yinyang, shd, ssc, mnist, nmnist, dvsgesture or delay_order "
             "(default: from --config, else digits).")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder with the dataset files of shd, ssc, mnist, nmnist, dvsgesture "
             "(default: the download cache).")] = None,
    epochs: Annotated[int | None, typer.Option(
        help="Number of epochs (default: from --config, else 60).")] = None,
    method: Annotated[str | None, typer.Option(
        help="Training method: eventprop (exact gradients), bptt (surrogate gradients), "
             "eprop (online e-prop) or stdp (unsupervised) (default: from --config, else "
             "eventprop).")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Random seed (default: from --config, else 0).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default: runs/<data>).")] = None,
    device: Annotated[str | None, typer.Option(
        help="auto (CUDA when present), cpu, cuda or cuda:N; sets train.device (default: "
             "from --config, else auto).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE",
                                                   help=SET_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Last stdout line: JSON result.")
                       ] = False,
) -> None:
    """Train a network (EventProp, BPTT, e-prop or STDP) and write a run folder;
    re-running resumes it."""
    from spikeforge.experiments.config import load_config, parse_override

    overrides = dict(parse_override(item) for item in (set_ or []))
    flags = {"data.name": data, "train.epochs": epochs, "seed": seed, "train.method": method,
             "train.device": device,
             "data.data_dir": str(data_dir.resolve()) if data_dir is not None else None}
    overrides.update({key: value for key, value in flags.items() if value is not None})
    resolved = load_config(config, overrides)
    from spikeforge.experiments.runner import train_run  # torch and the engine: after checks

    run_dir = out or Path("runs") / resolved.data.name
    _emit(train_run(resolved, run_dir), as_json)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(
        help="Run folder written by `spikeforge train`, or a model file (.pt) written by "
        "`export`/`import-nir` (then --data is needed).")],
    device: Annotated[str | None, typer.Option(
        help="auto, cpu, cuda or cuda:N (default: the run's train.device).")] = None,
    data: MODEL_FILE_DATA = None,
    data_dir: MODEL_FILE_DATA_DIR = None,
    as_json: Annotated[bool, typer.Option("--json", help="Last stdout line: JSON result.")
                       ] = False,
) -> None:
    """Evaluate a trained run's final model (or a model file) on its test split."""
    if run_dir.is_file():
        if data is None:
            raise SpikeforgeError(
                f"{run_dir} is a model file, which names no dataset; add --data NAME "
                "(and --data-dir DIR)")
        from spikeforge.experiments.evaluate_model import evaluate_model_file

        _emit(evaluate_model_file(run_dir, data, None if data_dir is None else str(data_dir)),
              as_json)
        return
    if data is not None or data_dir is not None:
        raise SpikeforgeError(
            "--data/--data-dir are for model files; a run folder evaluates on its own data")
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


def build_command() -> Any:
    """The click command of ``app`` with flags shown as flags: no metavar after a boolean
    flag (``--json``, not ``--json <bool>``)."""
    command = typer.main.get_command(app)
    commands = getattr(command, "commands", {})
    for cmd in (command, *commands.values()):
        for param in cmd.params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        cmd.get_help_option = _bare_help_option(cmd.get_help_option)
    return command


def _bare_help_option(get_help_option: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``get_help_option`` whose option (``-h/--help``) is shown without a metavar."""

    def bare(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    return bare


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        build_command()()
    except SpikeforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
