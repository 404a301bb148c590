"""The one run loader: a run config becomes data splits, a network and a trainer.

Training (:mod:`~spikeforge.experiments.runner`), cross-validation folds, ``evaluate``,
``export`` and ``energy`` all build a run through these functions, so a run folder is
read back exactly as it was trained:

* data: :func:`spikeforge.data.registry.load_data` applies every ``data`` option
  (``data_dir``, ``max_time_ms``, ``channel_stride``, ``n_channels``, the validation
  split, ``encoding``, ``delay_lines`` ...);
* network: the config's :class:`~spikeforge.model.NetworkSpec`, sized by the data
  (inputs after delay-line expansion, classes), with the data's binning step as its one
  ``dt`` (checked), compiled by :func:`spikeforge.nn.build_network`;
* weights: the run folder's ``model.pt``;
* device: ``train.device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) resolved once by
  :func:`resolve_device`; checkpoints load on the CPU and are then moved, so a run
  trained on one device reads back on any other.

Lower layers never see the run config: the trainer gets :class:`TrainSettings`, the
network compiler gets the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from spikeforge.data import DatasetSplits, SpikeDataset
from spikeforge.data.registry import load_data
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments import run_folder as rf
from spikeforge.experiments.config import RunConfig, load_config
from spikeforge.export.network_io import LoadedModel, load_model_file
from spikeforge.model import NetworkSpec
from spikeforge.nn import SpikingNetwork, build_network
from spikeforge.train.checkpoint import load_checkpoint
from spikeforge.train.trainer import Trainer, TrainSettings


def load_splits(config: RunConfig) -> DatasetSplits:
    """Train / validation / test splits with every option of ``config.data`` applied."""
    return load_data(config.data)


def network_spec(config: RunConfig, dataset: SpikeDataset) -> NetworkSpec:
    """The network ``config.model`` describes, sized for ``dataset`` (``n_inputs`` after
    delay-line expansion, ``n_classes``); its ``dt`` is ``config.data.dt`` (ms).

    Raises :class:`SpikeforgeError` if ``dataset`` is binned at another step or a
    synaptic delay does not fit in its window (``n_steps * dt`` ms).
    """
    spec = config.model.network_spec(
        dataset.n_inputs, dataset.n_classes, config.data.dt,
        spiking_output=config.train.loss == "first_spike",
    )  # fmt: skip
    dataset.check_dt(spec.dt)
    spec.check_window(dataset.n_steps * spec.dt)
    return spec


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device ``name`` names: ``"auto"`` is ``cuda`` when CUDA is available and
    ``cpu`` otherwise; ``"cuda"`` / ``"cuda:N"`` must exist (else a
    :class:`SpikeforgeError` naming the fix)."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SpikeforgeError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N"
                              ) from exc
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise SpikeforgeError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise SpikeforgeError(f"device {name} requested but CUDA is not available on this "
                              f"machine (torch {torch.__version__}); use --device cpu or auto")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise SpikeforgeError(f"device {name} requested but only {count} CUDA device(s) are "
                              f"visible; use cuda:0 .. cuda:{count - 1}")
    return device


CPU_ONLY_METHODS = ("stdp",)
"""Training methods whose engine runs on the CPU only (``auto`` is the CPU for them);
e-prop runs its torch loop on a GPU (:mod:`spikeforge.train.eprop`)."""


def config_device(config: RunConfig) -> torch.device:
    """The device ``config`` trains on: its ``train.device`` (:func:`resolve_device`), the
    CPU for a method of :data:`CPU_ONLY_METHODS` (a clear error if it asks for CUDA)."""
    method, name = config.train.method, config.train.device
    if method not in CPU_ONLY_METHODS:
        return resolve_device(name)
    if name not in ("auto", "cpu"):
        raise SpikeforgeError(f"train.method={method} runs on the CPU only, but "
                              f"train.device={name}; use --device cpu or auto")
    return torch.device("cpu")


def run_network(config: RunConfig, splits: DatasetSplits,
                device: str | torch.device | None = None) -> SpikingNetwork:
    """A freshly initialised network for ``config`` on ``splits`` (seeded by
    ``config.seed``), compiled by :func:`spikeforge.nn.build_network` on ``device``
    (default: the config's ``train.device``, see :func:`resolve_device`)."""
    cfg = config.train
    device = config_device(config) if device is None else resolve_device(device)
    spec = network_spec(config, splits.train)
    torch.manual_seed(config.seed)
    return build_network(spec, "bptt" if cfg.method == "bptt" else "eventprop", device,
                         surrogate=cfg.surrogate, surrogate_slope=cfg.surrogate_slope)


def train_settings(config: RunConfig) -> TrainSettings:
    """The plain optimisation settings of ``config`` (its ``train`` section, the seed and
    the training augmentation)."""
    t = config.train
    return TrainSettings(
        epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, lr_schedule=t.lr_schedule,
        lr_warmup=t.lr_warmup, loss=t.loss, reg_strength=t.reg_strength,
        reg_target_hz=t.reg_target_hz, grad_clip=t.grad_clip,
        silent_penalty=t.silent_penalty, method=t.method, seed=config.seed,
        augment=tuple(config.data.augment), eprop_feedback=t.eprop_feedback,
        eprop_update=t.eprop_update, eprop_update_every=t.eprop_update_every,
        calibrate=t.calibrate, calibrate_hz=t.calibrate_hz, amp=t.amp,
    )  # fmt: skip


def run_trainer(config: RunConfig, splits: DatasetSplits,
                network: SpikingNetwork | None = None) -> Trainer:
    """A :class:`Trainer` for ``config`` on ``splits`` (``network``: default
    :func:`run_network`)."""
    network = network if network is not None else run_network(config, splits)
    return Trainer(train_settings(config), splits, network)


def read_run_config(run_dir: Path) -> RunConfig:
    """The resolved config of run folder ``run_dir`` (a clear error if it is none)."""
    run_dir = Path(run_dir)
    if not (run_dir / rf.CONFIG).is_file():
        raise SpikeforgeError(
            f"{run_dir} is not a spikeforge run folder (no {rf.CONFIG}); "
            f"train one with `spikeforge train --out {run_dir}`")
    return load_config(run_dir / rf.CONFIG)


@dataclass
class LoadedRun:
    """A trained run rebuilt from its folder: resolved config, data splits (every data
    option applied) and the final network (eval mode, weights from ``model.pt``)."""

    run_dir: Path
    config: RunConfig
    splits: DatasetSplits
    network: SpikingNetwork

    def model(self, with_data: bool = True) -> LoadedModel:
        """The network with its readout rule (the run's loss), for export and energy."""
        return LoadedModel(self.network, self.config.train.loss,
                           self.splits if with_data else None)


def open_run(run_dir: Path, device: str | torch.device | None = "cpu") -> LoadedRun:
    """Rebuild the gradient-trained run in ``run_dir`` (see the module docstring) on
    ``device`` (None: the run's ``train.device``); the weights are read on the CPU and
    copied onto the network's device."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if config.train.method == "stdp":
        raise SpikeforgeError(
            f"{run_dir} is an STDP run (train.method=stdp), not a layered network; "
            f"evaluate it with `spikeforge evaluate {run_dir}`")
    splits = load_splits(config)
    network = run_network(config, splits, device)
    network.load_state_dict(load_checkpoint(run_dir / rf.MODEL)["model"])
    network.eval()
    return LoadedRun(run_dir, config, splits, network)


def load_run(run_dir: Path, with_data: bool = True) -> LoadedModel:
    """A run folder's final network and readout (and, if ``with_data``, its splits)."""
    return open_run(run_dir).model(with_data)


def load_any(path: Path, with_data: bool = True) -> LoadedModel:
    """A run folder (:func:`load_run`) or a standalone model file
    (:func:`spikeforge.export.load_model_file`, no data)."""
    path = Path(path)
    if path.is_dir():
        return load_run(path, with_data)
    if path.is_file():
        return load_model_file(path)
    raise SpikeforgeError(f"{path} does not exist; pass a run folder or a model file")
