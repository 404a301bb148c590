"""Trainer: fit / evaluate / checkpoint / resume for a :class:`SpikingNetwork`."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spikeforge.data import DatasetSplits, SpikeDataset, iterate_batches, load_dataset
from spikeforge.experiments import run_folder as rf
from spikeforge.experiments.config import RunConfig
from spikeforge.nn import SpikingNetwork
from spikeforge.train.checkpoint import load_checkpoint, save_checkpoint
from spikeforge.train.losses import (
    first_spike_loss,
    first_spike_prediction,
    readout_loss,
    readout_summary,
    spike_count_penalty,
)


def build_network(config: RunConfig, splits: DatasetSplits) -> SpikingNetwork:
    spec = config.model.network_spec(
        splits.train.n_inputs, splits.train.n_classes, config.data.dt,
        spiking_output=config.train.loss == "first_spike",
    )  # fmt: skip
    torch.manual_seed(config.seed)
    return SpikingNetwork(spec)


def _lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        return 0.1 ** (epoch // max(1, epochs // 3))
    return 1.0


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    predictions: np.ndarray
    labels: np.ndarray
    hidden_rate_hz: float


class Trainer:
    """Trains ``network`` on ``splits`` according to ``config`` (the ``train`` section)."""

    def __init__(self, config: RunConfig, splits: DatasetSplits, network: SpikingNetwork):
        self.config, self.splits, self.network = config, splits, network
        self.optimizer = torch.optim.Adam(network.parameters(), lr=config.train.lr)

    # -- one batch -------------------------------------------------------------------
    def _loss_and_predictions(self, events, labels) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config.train
        output = self.network(events)
        if cfg.loss == "first_spike":
            loss = first_spike_loss(output, labels)
            predictions = first_spike_prediction(output)
        else:
            loss = readout_loss(output, labels, cfg.loss)
            predictions = readout_summary(output.detach(), cfg.loss).argmax(dim=1)
        return loss, predictions

    def _regulariser(self) -> torch.Tensor:
        cfg = self.config.train
        total = torch.zeros(())
        if cfg.reg_strength > 0:
            for hidden in self.network.hidden_outputs:
                total = total + spike_count_penalty(hidden, cfg.reg_target_hz, cfg.reg_strength)
        return total

    def train_epoch(self, epoch: int, progress: Progress | None = None) -> dict[str, float]:
        cfg = self.config.train
        self.network.train()
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(cfg.lr_schedule, epoch, cfg.epochs)
        n_batches = math.ceil(len(self.splits.train) / cfg.batch_size)
        task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=n_batches,
                                 stats="") if progress else None
        total_loss, correct, seen = 0.0, 0, 0
        seed = self.config.seed * 100_003 + epoch
        for events, labels in iterate_batches(self.splits.train, cfg.batch_size, True, seed):
            self.optimizer.zero_grad()
            loss, predictions = self._loss_and_predictions(events, labels)
            (loss + self._regulariser()).backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.grad_clip)
            self.optimizer.step()
            total_loss += loss.item() * len(labels)
            correct += int((predictions == labels).sum())
            seen += len(labels)
            if progress is not None:
                progress.update(task, advance=1,
                                stats=f"loss {total_loss / seen:.3f} acc {correct / seen:.3f}")
        if progress is not None:
            progress.remove_task(task)
        return {"train_loss": total_loss / seen, "train_accuracy": correct / seen,
                "lr": self.optimizer.param_groups[0]["lr"]}

    @torch.no_grad()
    def evaluate(self, dataset: SpikeDataset) -> EvalResult:
        self.network.eval()
        losses, preds, labels_all, spikes, neuron_time = [], [], [], 0, 0.0
        for events, labels in iterate_batches(dataset, 256, False):
            loss, predictions = self._loss_and_predictions(events, labels)
            losses.append(loss.item() * len(labels))
            preds.append(predictions.numpy())
            labels_all.append(labels.numpy())
            for record in self.network.spike_records()[: len(self.network.hidden_outputs)]:
                spikes += record.events.n_events
                neuron_time += record.events.n_batch * record.events.n_units * (
                    record.events.n_steps * self.config.data.dt / 1000.0)
        predictions, labels = np.concatenate(preds), np.concatenate(labels_all)
        return EvalResult(
            loss=float(np.sum(losses) / len(labels)),
            accuracy=float(np.mean(predictions == labels)),
            predictions=predictions, labels=labels,
            hidden_rate_hz=spikes / neuron_time if neuron_time else 0.0,
        )  # fmt: skip

    # -- checkpoints -----------------------------------------------------------------
    def state(self, epoch: int) -> dict[str, Any]:
        return {"model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": epoch}

    def load_state(self, state: dict[str, Any]) -> int:
        self.network.load_state_dict(state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        return int(state.get("epoch", 0))


def _set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def train_run(config: RunConfig, out: Path, console: Console | None = None) -> dict[str, Any]:
    """Train (or resume) a run into folder ``out``; returns the results dictionary."""
    console = console or Console(stderr=True)
    _set_threads(config.train.threads)
    splits = load_dataset(config.data.name, config.data.dt)
    network = build_network(config, splits)
    trainer = Trainer(config, splits, network)
    resuming = rf.prepare_run_folder(out, config)
    out = Path(out)
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
                       hidden_rate_hz=val.hidden_rate_hz, train_seconds=elapsed)
            metrics.append(row)
            rf.write_metrics(out, metrics)
            save_checkpoint(out / rf.CHECKPOINT,
                            {**trainer.state(epoch + 1), "train_seconds": elapsed})
            console.print(
                f"epoch {epoch + 1:3d}  loss {row['train_loss']:.4f}  "
                f"train {row['train_accuracy']:.3f}  val {val.accuracy:.3f}  "
                f"rate {val.hidden_rate_hz:.1f} Hz"
            )
    return finish_run(config, trainer, out, metrics, elapsed)


def finish_run(config, trainer: Trainer, out: Path, metrics, elapsed: float) -> dict[str, Any]:
    """Test, write final model, results and plots."""
    from spikeforge.experiments.plots import plot_learning_curves, plot_raster

    test = trainer.evaluate(trainer.splits.test)
    save_checkpoint(out / rf.MODEL, {"model": trainer.network.state_dict(),
                                     "epoch": config.train.epochs})
    plot_learning_curves(metrics, out / "learning_curves.png")
    plot_raster(trainer.network, trainer.splits.test, out / "raster.png")
    results = {
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "val_accuracy": metrics[-1]["val_accuracy"] if metrics else None,
        "epochs": config.train.epochs,
        "train_seconds": round(elapsed, 3),
        "hidden_rate_hz": test.hidden_rate_hz,
        "run_dir": str(out),
    }
    rf.write_text_atomic(out / rf.RESULTS, json.dumps(results, indent=2) + "\n")
    return results


def evaluate_run(out: Path) -> dict[str, Any]:
    """Evaluate a finished run folder's final model on its test split."""
    from spikeforge.experiments.config import load_config

    out = Path(out)
    if not (out / rf.CONFIG).is_file():
        from spikeforge.errors import SpikeforgeError

        raise SpikeforgeError(f"{out} is not a spikeforge run folder (no {rf.CONFIG})")
    config = load_config(out / rf.CONFIG)
    splits = load_dataset(config.data.name, config.data.dt)
    trainer = Trainer(config, splits, build_network(config, splits))
    trainer.load_state(load_checkpoint(out / rf.MODEL))
    test = trainer.evaluate(splits.test)
    return {"test_accuracy": test.accuracy, "test_loss": test.loss,
            "hidden_rate_hz": test.hidden_rate_hz, "run_dir": str(out)}
