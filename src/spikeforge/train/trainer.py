"""Trainer: fit / evaluate / checkpoint / resume for a :class:`SpikingNetwork`.

The trainer takes plain settings (:class:`TrainSettings`), the data splits and a built
network; it never sees a run config. The network's spec holds the one time step ``dt``
(ms) and every dataset the trainer reads is checked to be binned at that step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from spikeforge.data import DatasetSplits, SpikeDataset, iterate_batches
from spikeforge.data.augment import Augmenter
from spikeforge.errors import SpikeforgeError
from spikeforge.nn import SpikingNetwork
from spikeforge.nn.activity import default_label, label_layer, reset_silent_warnings, warn_if_silent
from spikeforge.nn.bptt import dense_spike_count_penalty
from spikeforge.nn.init import LayerCalibration, calibrate_
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
    eprop_update, eprop_update_every: e-prop weight updates once per batch ("batch") or
        every ``eprop_update_every`` time steps within it ("step").
    seed: seeds the batch order and augmentation of every epoch.
    augment: training augmentation specs, e.g. ``[{"name": "shift", "max_shift": 40}]``
        (see :mod:`spikeforge.data.augment`).
    calibrate: which hidden layers :meth:`Trainer.calibrate` calibrates before the first
        epoch: "deep" (every hidden layer after the first; the first keeps its random
        initialisation), "all" (every hidden layer) or "none".
    calibrate_hz: the mean firing rate (Hz: spikes per neuron per second) calibrated
        layers are given on the first training batch.
    amp: "none", "bf16" or "fp16": with ``method="bptt"``, forward passes run under
        ``torch.autocast`` of that dtype on the network's device (matrix products in
        half precision; the neuron state, spikes and loss stay float32) and fp16 scales
        the loss (``torch.amp.GradScaler``).
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
    eprop_update: str = "batch"
    eprop_update_every: int = 1
    calibrate: str = "deep"
    calibrate_hz: float = 40.0
    amp: str = "none"


def _lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        return 0.1 ** (epoch // max(1, epochs // 3))
    return 1.0


CALIBRATE_MODES = ("deep", "all", "none")
"""Values of :attr:`TrainSettings.calibrate`."""

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""Autocast dtypes of :attr:`TrainSettings.amp`."""


@dataclass
class EvalResult:
    """Evaluation of one dataset: mean loss, accuracy, predictions and labels int64 [N],
    mean hidden firing rate (Hz), the mean rate of each hidden layer (Hz, input side
    first) and of a spiking readout (Hz; None for an LI readout)."""

    loss: float
    accuracy: float
    predictions: np.ndarray
    labels: np.ndarray
    hidden_rate_hz: float
    layer_rates_hz: list[float] = field(default_factory=list)
    readout_rate_hz: float | None = None


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
            settings.loss, settings.seed, settings.eprop_update, settings.eprop_update_every))
        self.layer_labels = self._label_layers()
        if settings.amp != "none" and (settings.amp not in AMP_DTYPES
                                       or settings.method != "bptt"):
            raise SpikeforgeError(f"amp={settings.amp!r} needs method='bptt' and one of "
                                  f"{sorted(AMP_DTYPES)} (got method={settings.method!r})")
        self.scaler = (torch.amp.GradScaler(self.device.type) if settings.amp == "fp16"
                       else None)

    def _label_layers(self) -> list[str]:
        """Name every spiking layer by its position in activity warnings (hidden layers,
        then a spiking readout); a new trainer's layers may warn again."""
        layers = list(self.network.layers)
        n_hidden = len(layers) - 1
        labels = [f"layers.{i} (hidden layer {i + 1} of {n_hidden}, {default_label(m)})"
                  for i, m in enumerate(layers[:-1])]
        if self.network.spiking_output:
            labels.append(f"layers.{n_hidden} (spiking readout, {default_label(layers[-1])})")
        for module, label in zip(layers, labels, strict=False):
            label_layer(module, label)
        reset_silent_warnings(labels)
        return labels

    def calibrate(self) -> list[LayerCalibration]:
        """Data-driven initialisation before the first epoch: scale the input weights of
        the hidden layers ``settings.calibrate`` names by one factor per layer (keeping
        their random sign pattern; all-zero weights are shifted instead) until each fires
        at ``settings.calibrate_hz`` (Hz) on the first training batch of epoch 0 (no
        augmentation; deterministic for the seed), layer by layer from the input side
        (:func:`spikeforge.nn.init.calibrate_`). Returns what was done per layer (empty
        for ``"none"``, or ``"deep"`` with one hidden layer). Call it on a fresh network
        only: it changes the weights."""
        cfg = self.settings
        if cfg.calibrate not in CALIBRATE_MODES:
            raise SpikeforgeError(f"train.calibrate must be one of {CALIBRATE_MODES}, "
                                  f"got {cfg.calibrate!r}")
        first = {"deep": 1, "all": 0}.get(cfg.calibrate)
        n_hidden = len(self.network.layers) - 1
        if first is None or first >= n_hidden:
            return []
        # dense and delayed layers (conv layers' weights are built from kernels: skipped)
        names = [f"layers.{i}" for i in range(first, n_hidden)
                 if isinstance(self.network.layers[i]._parameters.get("weight"), nn.Parameter)]
        if not names:
            return []
        events, labels = next(iterate_batches(self.splits.train, cfg.batch_size, True,
                                              self._epoch_seed(0)))
        events, _ = self._to_device(events, labels)
        done: list[LayerCalibration] = []
        for name in names:  # in forward order, each with the layers before it calibrated
            weight = self.network.get_submodule(name).weight
            mode = "scale" if bool(torch.any(weight != 0)) else "shift"
            done += calibrate_(self.network, events, cfg.calibrate_hz, mode=mode,
                               layers=[name])
        return done

    def _epoch_seed(self, epoch: int) -> int:
        """The seed of epoch ``epoch``'s batch order."""
        return self.settings.seed * 100_003 + epoch

    def warn_silent(self, result: EvalResult, where: str) -> list[str]:
        """Warn (once per layer, :func:`~spikeforge.nn.activity.warn_if_silent`) for each
        spiking layer with no spike in ``result``; returns the silent layers' labels."""
        rates = list(result.layer_rates_hz)
        if result.readout_rate_hz is not None:
            rates.append(result.readout_rate_hz)
        silent = [label for label, rate in zip(self.layer_labels, rates, strict=False)
                  if rate == 0]
        for label in silent:
            warn_if_silent(label, 0, where)
        return silent

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
    def _autocast(self):
        """``torch.autocast`` of :attr:`TrainSettings.amp` on the network's device (a
        no-op context for ``amp="none"``)."""
        if self.settings.amp == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.settings.amp])

    def _loss_and_predictions(self, events, labels) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.settings
        with self._autocast():
            output = self.network(events)
        if output.dtype in (torch.bfloat16, torch.float16):  # amp: the loss in float32
            output = output.float()
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
        seed = self._epoch_seed(epoch)
        augment = self.augmenter.for_epoch(cfg.seed, epoch) if self.augmenter else None
        batches = iterate_batches(train_set, cfg.batch_size, True, seed, augment)
        for batch, (events, labels) in enumerate(batches):
            if cfg.lr_warmup != "none":  # per batch, global batch count (exact on resume)
                for group in self.optimizer.param_groups:
                    group["lr"] = base_lr * warmup_factor(cfg.lr_warmup, epoch, batch, n_batches)
            self.optimizer.zero_grad()
            events, labels = self._to_device(events, labels)
            if self.eprop is not None:  # gradients forward in time, written into .grad
                loss, predictions = self.eprop.step(events, labels, self._eprop_update)
            else:
                loss, predictions = self._loss_and_predictions(events, labels)
                total = loss + self._regulariser()
                (total if self.scaler is None else self.scaler.scale(total)).backward()
            self._apply_gradients()
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

    def _apply_gradients(self) -> None:
        """Clip (``grad_clip``) and apply the gradients in ``.grad``: one optimiser step,
        through the fp16 loss scaler when there is one (it unscales before clipping and
        skips a step whose gradients are not finite)."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.settings.grad_clip)
        if self.scaler is None:
            self.optimizer.step()
            return
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _eprop_update(self) -> None:
        """One optimiser step inside an e-prop batch (``eprop_update="step"``)."""
        self._apply_gradients()
        self.optimizer.zero_grad()

    @torch.no_grad()
    def evaluate(self, dataset: SpikeDataset) -> EvalResult:
        """Loss, accuracy, predictions and firing rates (Hz: mean over all neurons and
        samples, of the hidden layers together, of each hidden layer and of a spiking
        readout) on ``dataset``."""
        dataset.check_dt(self.dt)
        self.network.eval()
        losses, preds, labels_all = [], [], []
        n_layers = len(self.network.layers) - 1 + int(self.network.spiking_output)
        spikes, neuron_s = np.zeros(n_layers), np.zeros(n_layers)  # per spiking layer
        for events, labels in iterate_batches(dataset, self.eval_batch_size, False):
            loss, predictions = self._loss_and_predictions(*self._to_device(events, labels))
            losses.append(loss.item() * len(labels))
            preds.append(predictions.cpu().numpy())
            labels_all.append(labels.numpy())
            for i, record in enumerate(self.network.spike_records()[:n_layers]):
                spikes[i] += record.events.n_events
                neuron_s[i] += record.events.n_batch * record.events.n_units * (
                    record.events.n_steps * self.dt / 1000.0)
        predictions, labels = np.concatenate(preds), np.concatenate(labels_all)
        rates = [float(n / s) if s else 0.0 for n, s in zip(spikes, neuron_s, strict=True)]
        n_hidden = len(self.network.layers) - 1
        hidden_s = neuron_s[:n_hidden].sum()
        return EvalResult(
            loss=float(np.sum(losses) / len(labels)),
            accuracy=float(np.mean(predictions == labels)),
            predictions=predictions, labels=labels,
            hidden_rate_hz=float(spikes[:n_hidden].sum() / hidden_s) if hidden_s else 0.0,
            layer_rates_hz=rates[:n_hidden],
            readout_rate_hz=rates[n_hidden] if self.network.spiking_output else None,
        )  # fmt: skip

    @property
    def eval_batch_size(self) -> int:
        """Samples per evaluation batch: 256 for the event-driven methods (memory
        O(spikes)); the training batch size for BPTT, whose dense forward holds
        ``batch x T x inputs`` values (256 x 1,000 x 7,000 inputs of the SHD recipe's
        delay lines: 7 GB)."""
        return self.settings.batch_size if self.settings.method == "bptt" else 256

    # -- checkpoints -----------------------------------------------------------------
    def state(self, epoch: int) -> dict[str, Any]:
        state = {"model": self.network.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "epoch": epoch}
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        return state

    def load_state(self, state: dict[str, Any]) -> int:
        self.network.load_state_dict(state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
        return int(state.get("epoch", 0))
