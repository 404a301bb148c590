"""Shared helpers for the export / energy tests: tiny networks and one tiny digits run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from spikeforge.engine import Events
from spikeforge.export.network_io import LoadedModel
from spikeforge.model import LayerSpec, LIFParams, NetworkSpec
from spikeforge.nn import SpikingNetwork

_RUN: dict[str, Path] = {}


def small_model(recurrent: bool = False, spiking_output: bool = False, seed: int = 0,
                n_inputs: int = 12) -> LoadedModel:
    """Two hidden LIF layers (different taus) and an LI (or LIF) output, random weights."""
    spec = NetworkSpec(
        n_inputs=n_inputs,
        layers=(
            LayerSpec(20, LIFParams(20.0, 5.0, 1.0), recurrent=recurrent, weight_mean=1.5),
            LayerSpec(15, LIFParams(10.0, 3.0, 0.8), weight_mean=0.6),
            LayerSpec(4, LIFParams(15.0, 4.0, 0.5 if spiking_output else 1.0,
                                     spiking=spiking_output), weight_mean=0.3),
        ),
        dt=1.0,
    )
    torch.manual_seed(seed)
    return LoadedModel(SpikingNetwork(spec).eval(),
                       "first_spike" if spiking_output else "sum_exp")


def random_events(n_batch: int = 5, n_steps: int = 40, n_units: int = 12, p: float = 0.12,
                  seed: int = 0) -> Events:
    rng = np.random.default_rng(seed)
    return Events.from_dense((rng.random((n_batch, n_steps, n_units)) < p).astype(np.float32))


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", *args], capture_output=True,
                          text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def cli(*args: str, check: bool = True) -> tuple[int, str, str]:
    """Run ``spikeforge ARGS`` in this process (saves the interpreter start-up): returns
    (exit code, stdout, stderr)."""
    import contextlib
    import io

    from spikeforge.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    argv = sys.argv
    sys.argv = ["spikeforge", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    if check and code != 0:
        raise AssertionError(f"exit {code}\n{out.getvalue()}\n{err.getvalue()}")
    return code, out.getvalue(), err.getvalue()


def tiny_digits_run(root: Path) -> Path:
    """A digits run (default model, 3 epochs), trained once per test session."""
    if "digits" not in _RUN:
        out = Path(root) / "digits_run"
        run_cli("train", "--out", str(out), "--epochs", "3")
        _RUN["digits"] = out
    return _RUN["digits"]


def untrained_digits_run(root: Path, hidden: int = 32) -> Path:
    """A digits run folder with initial (untrained) weights: no training time, real data.

    The default input weights make the hidden layer fire, so agreement checks are not
    trivial; accuracy is chance level.
    """
    key = f"untrained{hidden}"
    if key not in _RUN:
        from spikeforge.experiments import run_folder as rf
        from spikeforge.experiments.config import load_config
        from spikeforge.experiments.loading import load_splits, run_network
        from spikeforge.train.checkpoint import save_checkpoint

        out = Path(root) / key
        config = load_config(None, {"model.hidden": [hidden], "train.epochs": 1})
        network = run_network(config, load_splits(config))
        rf.prepare_run_folder(out, config)
        save_checkpoint(out / rf.MODEL, {"model": network.state_dict(), "epoch": 0})
        _RUN[key] = out
    return _RUN[key]


def delayed_model(mode: str, recurrent: bool = False) -> LoadedModel:
    """A network with per-synapse delays (``mode``: "round" or "interpolate")."""
    from spikeforge.model.connectivity import DelaySpec

    spec = NetworkSpec(n_inputs=12, layers=(
        LayerSpec(20, LIFParams(20.0, 5.0, 1.0), weight_mean=1.5, recurrent=recurrent,
                  delays=DelaySpec(6.0, mode=mode)),
        LayerSpec(4, LIFParams(20.0, 5.0, spiking=False), weight_mean=0.3,
                  delays=DelaySpec(4.0, mode=mode)),
    ), dt=1.0)
    torch.manual_seed(0)
    return LoadedModel(SpikingNetwork(spec).eval(), "sum_exp")
