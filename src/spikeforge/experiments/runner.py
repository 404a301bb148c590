"""Run orchestration: train / resume / evaluate a run folder (config in, results out)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spikeforge.atomic import write_text_atomic
from spikeforge.data import DatasetSplits
from spikeforge.data.registry import load_data
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments import run_folder as rf
from spikeforge.experiments.config import RunConfig, load_config
from spikeforge.experiments.delay_plots import plot_delay_histograms
from spikeforge.experiments.loading import config_device, open_run, run_network, run_trainer
from spikeforge.experiments.plots import plot_learning_curves, plot_raster
from spikeforge.experiments.run_checks import check_epoch, check_splits
from spikeforge.experiments.speaker_report import (
    VAL_KEY,
    report_evaluation,
    report_validation,
)
from spikeforge.threads import configure_threads
from spikeforge.train.checkpoint import load_checkpoint, save_checkpoint
from spikeforge.train.trainer import EvalResult, Trainer


def rates_text(result: EvalResult) -> str:
    """The per-layer part of the epoch line: ``"layers 107.4/20.3 Hz"`` (each hidden
    layer's validation rate, input side first; ``"readout 12.0 Hz"`` added for a spiking
    readout)."""
    text = "layers " + "/".join(f"{rate:.1f}" for rate in result.layer_rates_hz) + " Hz"
    if result.readout_rate_hz is not None:
        text += f"  readout {result.readout_rate_hz:.1f} Hz"
    return text


def _set_threads(threads: int) -> None:
    configure_threads(threads)  # 0: the cores free now (affinity, cgroup quota, load)


def train_run(config: RunConfig, out: Path, console: Console | None = None,
              on_epoch: Callable[[dict[str, Any]], None] | None = None,
              splits: DatasetSplits | None = None) -> dict[str, Any]:
    """Train (or resume) a run into folder ``out``; returns the results dictionary.

    ``on_epoch(row)`` is called after each epoch's metrics row is saved (it may raise, e.g.
    to prune a sweep trial; the checkpoint is already written). ``splits`` replaces the
    dataset named in the config (cross-validation folds).
    """
    config_device(config)  # a missing GPU fails before anything is read or written
    if config.train.method == "stdp":  # unsupervised route: its own runner, same folder
        from spikeforge.experiments.stdp_runner import train_stdp_run

        return train_stdp_run(config, out, console, on_epoch, splits)
    console = console or Console(stderr=True)
    splits = splits or load_data(config.data)
    check_splits(splits)
    network = run_network(config, splits)
    trainer = run_trainer(config, splits, network)
    _set_threads(config.train.threads)  # after the input checks: no load warning before an error
    with rf.open_run_folder(out, config) as resuming:  # locked while training
        return _train_locked(config, Path(out), resuming, trainer, console, on_epoch)


def _train_locked(config: RunConfig, out: Path, resuming: bool, trainer: Trainer,
                  console: Console, on_epoch: Callable[[dict[str, Any]], None] | None
                  ) -> dict[str, Any]:
    """The epochs of :func:`train_run`, run while holding the folder's lock."""
    splits = trainer.splits
    results_path = out / rf.RESULTS
    if resuming and results_path.is_file():
        console.print(f"[green]run in {out} is already complete[/green]")
        return json.loads(results_path.read_text())
    start_epoch, metrics, elapsed = 0, [], 0.0
    if resuming and (out / rf.CHECKPOINT).is_file():
        state = load_checkpoint(out / rf.CHECKPOINT)
        start_epoch = trainer.load_state(state)
        elapsed = float(state.get("train_seconds", 0.0))
        metrics = [m for m in rf.read_metrics(out) if m["epoch"] <= start_epoch]
        rf.write_metrics(out, metrics)
        console.print(f"resuming {out} after epoch {start_epoch}")
    if start_epoch == 0:  # a fresh network: data-driven init (resumed weights are kept)
        for layer in trainer.calibrate():
            console.print(f"calibrated {layer.describe()}", soft_wrap=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total} batches"), TimeElapsedColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[stats]}"))
    with Progress(*columns, console=console, transient=True) as progress:
        for epoch in range(start_epoch, config.train.epochs):
            t0 = time.perf_counter()
            row = {"epoch": epoch + 1, **trainer.train_epoch(epoch, progress)}
            elapsed += time.perf_counter() - t0
            val = trainer.evaluate(splits.val)
            row.update(val_loss=val.loss, val_accuracy=val.accuracy,
                       hidden_rate_hz=val.hidden_rate_hz, layer_rates_hz=val.layer_rates_hz,
                       train_seconds=elapsed)
            if val.readout_rate_hz is not None:
                row["readout_rate_hz"] = val.readout_rate_hz
            check_epoch(epoch + 1, row, trainer.network)  # before anything of it is saved
            # speaker datasets: per-speaker accuracy in the row, val_speaker_report.json + PNGs
            val_speakers = report_validation(val, splits.val, out, metrics, epoch + 1)
            if val_speakers is not None:
                row[VAL_KEY] = val_speakers
            metrics.append(row)
            rf.write_metrics(out, metrics)
            save_checkpoint(out / rf.CHECKPOINT,
                            {**trainer.state(epoch + 1), "train_seconds": elapsed})
            console.print(
                f"epoch {epoch + 1:3d}  loss {row['train_loss']:.4f}  "
                f"train {row['train_accuracy']:.3f}  val {val.accuracy:.3f}  "
                f"rate {val.hidden_rate_hz:.1f} Hz  {rates_text(val)}", soft_wrap=True
            )
            trainer.warn_silent(val, f"on the validation set after epoch {epoch + 1}")
            if on_epoch is not None:
                on_epoch(row)
    return finish_run(config, trainer, out, metrics, elapsed)


def finish_run(config, trainer: Trainer, out: Path, metrics, elapsed: float) -> dict[str, Any]:
    """Test, write final model, results and plots."""
    test = trainer.evaluate(trainer.splits.test)
    save_checkpoint(out / rf.MODEL, {"model": trainer.network.state_dict(),
                                     "epoch": config.train.epochs})
    plot_learning_curves(metrics, out / "learning_curves.png")
    plot_raster(trainer.network, trainer.splits.test, out / "raster.png")
    plot_delay_histograms(trainer.network, out / "delays.png")  # only if it has delays
    per_speaker = report_evaluation(test, trainer.splits.test, out)
    results = {
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "val_accuracy": metrics[-1]["val_accuracy"] if metrics else None,
        "epochs": config.train.epochs,
        "train_seconds": round(elapsed, 3),
        "hidden_rate_hz": test.hidden_rate_hz,
        "run_dir": str(out),
        **({"per_speaker_accuracy": per_speaker} if per_speaker else {}),
    }
    write_text_atomic(out / rf.RESULTS, json.dumps(results, indent=2) + "\n")
    return results


def evaluate_run(out: Path, device: str | None = None) -> dict[str, Any]:
    """Evaluate a finished run folder's final model on its test split, on ``device``
    (``auto``, ``cpu``, ``cuda``, ``cuda:N``; None: the run's ``train.device``)."""
    out = Path(out)
    if not (out / rf.CONFIG).is_file():
        raise SpikeforgeError(f"{out} is not a spikeforge run folder (no {rf.CONFIG})")
    config = load_config(out / rf.CONFIG)
    if config.train.method == "stdp":
        from spikeforge.experiments.stdp_runner import evaluate_stdp_run

        return evaluate_stdp_run(out)
    run = open_run(out, device)
    splits, trainer = run.splits, run_trainer(run.config, run.splits, run.network)
    test = trainer.evaluate(splits.test)
    per_speaker = report_evaluation(test, splits.test, out)
    return {"test_accuracy": test.accuracy, "test_loss": test.loss,
            "hidden_rate_hz": test.hidden_rate_hz, "run_dir": str(out),
            **({"per_speaker_accuracy": per_speaker} if per_speaker else {})}
