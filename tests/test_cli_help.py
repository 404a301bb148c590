"""Every command's ``--help``: one style (defaults, units, real flags, -h, --set)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from spikeforge.cli import build_command

COMMAND = build_command()
NAMES = sorted(COMMAND.commands)


def render(*args: str) -> str:
    result = CliRunner().invoke(COMMAND, [*args], env={"COLUMNS": "200", "NO_COLOR": "1"},
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_listed() -> None:
    assert {"train", "evaluate", "sweep", "cv", "report", "train-ann", "convert", "export",
            "import-nir", "energy"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_short_and_long_help_agree(name: str) -> None:
    text = render(name, "-h")
    assert text == render(name, "--help")
    assert f"spikeforge {name}" in text or "Usage:" in text
    assert "<bool>" not in text


def test_root_help_has_short_option() -> None:
    text = render("-h")
    assert "-h" in text and "<bool>" not in text


@pytest.mark.parametrize("name", NAMES)
def test_every_option_states_its_default(name: str) -> None:
    command = COMMAND.commands[name]
    missing = []
    for param in command.params:
        if param.required or getattr(param, "is_flag", False) or param.multiple:
            continue
        help_text = (getattr(param, "help", None) or "").lower()
        if param.default is None and "default" not in help_text:
            missing.append(param.name)
        if param.default is not None and not param.show_default:
            missing.append(param.name)
    assert missing == []
    text = render(name, "--help")
    for param in command.params:
        if param.default not in (None, False) and not getattr(param, "is_flag", False):
            assert "[default:" in text


@pytest.mark.parametrize("name", NAMES)
def test_flags_take_no_value(name: str) -> None:
    for param in COMMAND.commands[name].params:
        if isinstance(param, click.Option) and param.is_flag:
            assert param.metavar == "", param.name


@pytest.mark.parametrize("name", [n for n in NAMES if any(
    "--set" in p.opts for p in COMMAND.commands[n].params)])
def test_set_is_documented_as_repeatable(name: str) -> None:
    (param,) = [p for p in COMMAND.commands[name].params if "--set" in p.opts]
    assert param.multiple and param.metavar == "KEY=VALUE"
    assert "repeat --set" in param.help
    assert "KEY=VALUE" in render(name, "--help")


def test_train_lists_every_method_and_dataset() -> None:
    params = {p.name: p for p in COMMAND.commands["train"].params}
    for method in ("eventprop", "bptt", "eprop", "stdp"):
        assert method in params["method"].help
    from spikeforge.data.registry import DATASETS, FILE_DATASETS

    for dataset in DATASETS:
        assert dataset in params["data"].help
    for dataset in FILE_DATASETS:
        assert dataset in params["data_dir"].help
    summary = COMMAND.commands["train"].get_short_help_str(200)
    assert "BPTT" in summary and "STDP" in summary and "(EventProp)" not in summary


@pytest.mark.parametrize("name", NAMES)
def test_time_steps_are_given_in_ms(name: str) -> None:
    for param in COMMAND.commands[name].params:
        help_text = getattr(param, "help", None) or ""
        if param.name == "dt" or "time step" in help_text.lower() and "steps" not in (
                param.name or ""):
            assert " ms" in help_text, (name, param.name)


def test_json_flag_takes_no_value() -> None:
    result = CliRunner().invoke(COMMAND, ["train", "--set", "train.epochs=0", "--json"])
    assert result.exit_code != 0
    assert "Got unexpected extra argument" not in result.output
