"""Trainer: fit / evaluate / checkpoint / resume for a :class:`SpikingNetwork`.

The trainer takes plain settings (:class:`TrainSettings`), the data splits and a built
network; it never sees a run config. The network's spec holds the one time step ``dt``
(ms) and every dataset the trainer reads is checked to be binned at that step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from spikeforge.data import DatasetSplits, SpikeDataset, iterate_batches
from spikeforge.data.augment import Augmenter
from spikeforge.nn import SpikingNetwork
from spikeforge.nn.bptt import dense_spike_count_penalty
from spikeforge.train.eprop import EpropLearner, EpropSettings
from spikeforge.train.losses import (
    first_spike_loss,
    first_spike_times,
    readout_loss,
    readout_summary,
    silent_output_penalty,
    spike_count_penalty,
)
from spikeforge.train.lr_schedule import warmup_factor


@dataclass(frozen=True)
class TrainSettings:
    """How to optimise: plain values, no run config.

    epochs, batch_size: training length and batch size (samples).
    lr: Adam learning rate; lr_schedule: "constant", "cosine" or "step" (per epoch);
    lr_warmup: "none" or "ease_in" (per batch, see :mod:`spikeforge.train.lr_schedule`).
    loss: "sum", "sum_exp", "max" (readout voltages) or "first_spike" (spiking output).
    reg_strength, reg_target_hz: hidden spike-count regulariser (Hz).
    grad_clip: max gradient norm (0: no clipping).
    silent_penalty: first_spike loss drive for silent correct-class outputs.
    method: "eventprop" or "bptt" (how the regulariser reads hidden spikes), or "eprop"
    (forward-only e-prop gradients, :mod:`spikeforge.train.eprop`).
    eprop_feedback: e-prop learning-signal weights, "symmetric" or "random".
    seed: seeds the batch order and augmentation of every epoch.
    augment: training augmentation specs, e.g. ``[{"name": "shift", "max_shift": 40}]``
        (see :mod:`spikeforge.data.augment`).
    """

    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-2
    lr_schedule: str = "cosine"
    lr_warmup: str = "none"
    loss: str = "sum_exp"
    reg_strength: float = 1e-3
    reg_target_hz: float = 10.0
    grad_clip: float = 0.0
    silent_penalty: float = 1.0
    method: str = "eventprop"
    seed: int = 0
    augment: Sequence[dict[str, Any]] = field(default_factory=tuple)
    eprop_feedback: str = "symmetric"


def _lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        return 0.1 ** (epoch // max(1, epochs // 3))
    return 1.0


@dataclass
class EvalResult:
    """Evaluation of one dataset: mean loss, accuracy, predictions and labels int64 [N],
    mean hidden firing rate (Hz)."""

    loss: float
    accuracy: float
    predictions: np.ndarray
    labels: np.ndarray
    hidden_rate_hz: float


class Trainer:
    """Trains ``network`` on ``splits`` with ``settings``.

    Every split must be binned at the network's step ``network.spec.dt`` (ms); a
    mismatch is a :class:`~spikeforge.errors.SpikeforgeError` naming both values.
    """

    def __init__(self, settings: TrainSettings, splits: DatasetSplits,
                 network: SpikingNetwork) -> None:
        for dataset in (splits.train, splits.val, splits.test):
            dataset.check_dt(network.spec.dt)
        self.settings, self.splits, self.network = settings, splits, network
        self.optimizer = torch.optim.Adam(network.parameters(), lr=settings.lr)
        # training-batch augmentation (settings.augment), seeded by (seed, epoch)
        self.augmenter = Augmenter.from_specs(settings.augment, splits.train)
        self.eprop = None if settings.method != "eprop" else EpropLearner(network, EpropSettings(
            settings.eprop_feedback, settings.reg_strength, settings.reg_target_hz,
            settings.loss, settings.seed))

    @property
    def dt(self) -> float:
        """The network's one time step (ms)."""
        return float(self.network.spec.dt)

    @property
    def device(self) -> torch.device:
        """The device the network's parameters live on (batches are moved there)."""
        return next(self.network.parameters()).device

    def _to_device(self, events, labels: torch.Tensor):
        """One batch on the network's device, moved once: labels as a tensor there and
        the events dense on the device for a CUDA network (sparse :class:`Events` stay
        on the host for the CPU drivers)."""
        device = self.device
        if device.type == "cpu":
            return events, labels
        probe = next(self.network.parameters())
        dense = torch.from_numpy(events.to_dense()).to(device=device, dtype=probe.dtype,
                                                       non_blocking=True)
        return dense, labels.to(device, non_blocking=True)

    # -- one batch -------------------------------------------------------------------
    def _loss_and_predictions(self, events, labels) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.settings
        output = self.network(events)
        if cfg.loss == "first_spike":
            t_first = first_spike_times(output)
            loss = first_spike_loss(t_first, labels)
            if self.network.training and cfg.silent_penalty > 0:
                readout = self.network.layers[-1]
                last_hidden = self.network.hidden_outputs[-1]
                loss = loss + silent_output_penalty(
                    readout.subthreshold_voltage(last_hidden), t_first, labels,
                    t_silent=output.shape[1] * readout.dt,
                    threshold=readout.params.threshold, strength=cfg.silent_penalty,
                )  # fmt: skip
            predictions = t_first.detach().argmin(dim=1)
        else:
            loss = readout_loss(output, labels, cfg.loss)
            predictions = readout_summary(output.detach(), cfg.loss).argmax(dim=1)
        return loss, predictions

    def _regulariser(self) -> torch.Tensor:
        cfg = self.settings
        total = torch.zeros(())
        if cfg.reg_strength > 0:
            for hidden in self.network.hidden_outputs:
                if cfg.method == "bptt":
                    total = total + dense_spike_count_penalty(
                        hidden, cfg.reg_target_hz, cfg.reg_strength, self.dt)
                    continue
                total = total + spike_count_penalty(hidden, cfg.reg_target_hz, cfg.reg_strength)
        return total

    def train_epoch(self, epoch: int, progress: Progress | None = None) -> dict[str, float]:
        cfg = self.settings
        self.network.train()
        base_lr = cfg.lr * _lr_factor(cfg.lr_schedule, epoch, cfg.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = base_lr
        # append-mode augmentation (blend) enlarges the epoch: originals + new samples
        self.splits.train.check_dt(self.dt)
        train_set = (self.augmenter.epoch_dataset(cfg.seed, epoch) if self.augmenter
                     else self.splits.train)
        n_batches = math.ceil(len(train_set) / cfg.batch_size)
        task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=n_batches,
                                 stats="") if progress else None
        total_loss, correct, seen = 0.0, 0, 0
        seed = cfg.seed * 100_003 + epoch
        augment = self.augmenter.for_epoch(cfg.seed, epoch) if self.augmenter else None
        batches = iterate_batches(train_set, cfg.batch_size, True, seed, augment)
        for batch, (events, labels) in enumerate(batches):
            if cfg.lr_warmup != "none":  # per batch, global batch count (exact on resume)
                for group in self.optimizer.param_groups:
                    group["lr"] = base_lr * warmup_factor(cfg.lr_warmup, epoch, batch, n_batches)
            self.optimizer.zero_grad()
            events, labels = self._to_device(events, labels)
            if self.eprop is not None:  # gradients forward in time, written into .grad
                loss, predictions = self.eprop.step(events, labels)
            else:
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
        """Loss, accuracy, predictions and hidden firing rate (Hz) on ``dataset``."""
        dataset.check_dt(self.dt)
        self.network.eval()
        losses, preds, labels_all, spikes, neuron_time = [], [], [], 0, 0.0
        for events, labels in iterate_batches(dataset, 256, False):
            loss, predictions = self._loss_and_predictions(*self._to_device(events, labels))
            losses.append(loss.item() * len(labels))
            preds.append(predictions.cpu().numpy())
            labels_all.append(labels.numpy())
            for record in self.network.spike_records()[: len(self.network.hidden_outputs)]:
                spikes += record.events.n_events
                neuron_time += record.events.n_batch * record.events.n_units * (
                    record.events.n_steps * self.dt / 1000.0)
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
