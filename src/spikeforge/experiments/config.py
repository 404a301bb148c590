"""Run configuration: pydantic models, YAML on disk, dotted overrides from the CLI."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.stdp_config import StdpConfig
from spikeforge.experiments.structure_config import (
    ConvLayerConfig,
    DelayConfig,
    add_structure,
    input_units,
)
from spikeforge.model import ALIFParams, LayerSpec, LIFParams, NetworkSpec
from spikeforge.neurons import AdLIFParams


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DelayLinesConfig(_Strict):
    """Delay-line input: ``copies`` replicas of the input, ``spacing_ms`` apart."""

    copies: int = Field(10, ge=1)
    spacing_ms: float = Field(30.0, ge=0)


class DataConfig(_Strict):
    """Which dataset to train on, how to read and bin it, and training augmentation."""

    name: str = "digits"
    dt: float = Field(1.0, description="simulation time step in ms")
    data_dir: str | None = Field(None, description="folder with the dataset files "
                                 "(shd/ssc/mnist); default: download cache")
    download: bool = Field(True, description="download missing files (shd/ssc/mnist)")
    max_time_ms: float | None = Field(None, gt=0, description="shd/ssc: simulated window "
                                      "(default 1400 SHD, 1000 SSC)")
    channel_stride: int = Field(1, ge=1, description="shd/ssc: channel downsampling")
    n_channels: int = Field(700, ge=1, le=65536, description="shd/ssc: channels in files")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="shd: held-out share")
    val_split: Literal["speaker", "random"] = "speaker"
    encoding: Literal["latency", "log_latency", "poisson"] = "latency"
    augment: list[dict[str, Any]] = Field(
        default_factory=list, description="training augmentations, e.g. [{name: shift, "
        "max_shift: 40}, {name: blend, p: 0.5}] (see spikeforge.data.augment)")
    delay_lines: DelayLinesConfig | None = None

    @field_validator("augment")
    @classmethod
    def _check_augment(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from spikeforge.data.augment import build_transform

        for spec in value:
            try:
                build_transform(spec)
            except SpikeforgeError as exc:
                raise ValueError(str(exc)) from exc
        return value


class ModelConfig(_Strict):
    """Network: hidden LIF layers and an LI readout."""

    hidden: list[int] = Field(default_factory=lambda: [128])
    recurrent: bool = False
    tau_mem: float = 20.0
    tau_syn: float = 5.0
    threshold: float = 1.0
    readout_tau_mem: float = 20.0
    readout_tau_syn: float = 5.0
    input_weight_mean: float = 0.8
    input_weight_std: float = 1.0
    hidden_weight_mean: float = 0.0
    hidden_weight_std: float = 1.0
    recurrent_std: float = 0.5
    readout_weight_std: float = 20.0
    neuron: Literal["lif", "alif", "adlif"] = Field("lif", description="hidden neuron model")
    tau_adapt: float = Field(200.0, description="alif: adaptation time constant (ms)")
    adapt_beta: float = Field(0.2, description="alif: threshold increase per spike")
    adlif_a: float = Field(
        0.5, description="adlif: coupling a of the adaptation current w to V "
        "(dimensionless, > -1): tau_w dw/dt = a V - w")
    adlif_b: float = Field(
        0.5, description="adlif: jump b of w per spike (threshold units, >= 0)")
    adlif_tau_w: float = Field(
        100.0, description="adlif: adaptation time constant tau_w (ms, > data.dt)")
    adlif_learn: bool = Field(
        False, description="adlif: learn per-neuron a, b, tau_w within the ranges below "
        "(train.method=bptt)")
    adlif_init: Literal["fixed", "uniform"] = Field(
        "fixed", description="adlif: 'uniform' draws every hidden neuron's a, b, tau_w "
        "uniformly from the ranges below (fixed under EventProp, learned with adlif_learn)")
    adlif_a_range: tuple[float, float] = Field(
        (-1.0, 2.0), description="adlif_learn: (low, high) of a (dimensionless, low >= -1)")
    adlif_b_range: tuple[float, float] = Field(
        (0.0, 2.0), description="adlif_learn: (low, high) of b (threshold units, low >= 0)")
    adlif_tau_w_range: tuple[float, float] = Field(
        (20.0, 300.0), description="adlif_learn: (low, high) of tau_w (ms, low > data.dt)")
    tau_spread: float = Field(
        0.0, description="hidden per-neuron tau_mem/tau_syn ~ U[tau(1-s), tau(1+s)]")
    train_tau: bool = Field(False, description="train hidden taus (train.method=bptt)")
    input_shape: list[int] | None = Field(
        None, description="[channels, height, width] of image inputs (for model.conv)")
    conv: list[ConvLayerConfig] = Field(
        default_factory=list, description="conv LIF layers before the dense hidden layers")
    delays: DelayConfig | None = Field(None, description="learnable synaptic delays")

    def network_spec(self, n_inputs: int, n_classes: int, dt: float, spiking_output: bool):
        """The :class:`NetworkSpec` this config describes."""
        neuron = LIFParams(self.tau_mem, self.tau_syn, self.threshold, spiking=True)
        if self.neuron == "alif":
            neuron = ALIFParams(self.tau_mem, self.tau_syn, self.threshold, spiking=True,
                                tau_adapt=self.tau_adapt, beta=self.adapt_beta)
        if self.neuron == "adlif":
            neuron = AdLIFParams(
                self.tau_mem, self.tau_syn, self.threshold, spiking=True,
                tau_adapt=self.adlif_tau_w, a=self.adlif_a, b=self.adlif_b,
                learn_adaptation=self.adlif_learn, adaptation_init=self.adlif_init,
                a_range=self.adlif_a_range,
                b_range=self.adlif_b_range, tau_adapt_range=self.adlif_tau_w_range)
        layers = []
        for index, size in enumerate(self.hidden):
            first = index == 0
            layers.append(
                LayerSpec(
                    size=size, neuron=neuron, recurrent=self.recurrent,
                    weight_mean=self.input_weight_mean if first else self.hidden_weight_mean,
                    weight_std=self.input_weight_std if first else self.hidden_weight_std,
                    recurrent_std=self.recurrent_std, tau_spread=self.tau_spread,
                    train_tau=self.train_tau,
                )  # fmt: skip
            )
        readout = LIFParams(
            self.readout_tau_mem, self.readout_tau_syn, self.threshold, spiking=spiking_output
        )
        layers.append(LayerSpec(size=n_classes, neuron=readout,
                                weight_std=self.readout_weight_std))
        layers = add_structure(self, layers, n_inputs, neuron)
        return NetworkSpec(n_inputs=n_inputs, layers=tuple(layers), dt=dt)


class TrainConfig(_Strict):
    """Optimisation: EventProp gradients, Adam, learning-rate schedule, loss."""

    epochs: int = Field(60, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-2, gt=0)
    lr_schedule: Literal["constant", "cosine", "step"] = "cosine"
    lr_warmup: Literal["none", "ease_in"] = Field(
        "none", description="ease_in: per-batch lr factor min(1, 1e-3 * 1.05**k), k the "
        "global batch count (full rate from batch 142; mlGeNN SHD recipe)")
    loss: Literal["sum", "sum_exp", "max", "first_spike"] = "sum_exp"
    reg_strength: float = Field(1e-3, ge=0, description="hidden spike-count regulariser")
    reg_target_hz: float = Field(10.0, ge=0)
    grad_clip: float = Field(0.0, ge=0, description="max gradient norm (0: no clipping)")
    silent_penalty: float = Field(
        1.0, ge=0, description="first_spike loss: drive for silent correct-class outputs")
    threads: int = Field(0, ge=0, description="CPU threads (0: all cores)")
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda|cuda:\d+)$",
        description="where the network trains: auto (CUDA when present), cpu, cuda or "
        "cuda:N (the N-th visible GPU)")
    method: Literal["eventprop", "bptt", "stdp", "eprop"] = Field(
        "eventprop", description="gradients: exact EventProp or surrogate-gradient BPTT; "
        "stdp: unsupervised STDP (stdp section); eprop: forward-only e-prop (one hidden "
        "LIF/ALIF layer, per-step cross-entropy on the LI readout)")
    eprop_feedback: Literal["symmetric", "random"] = Field(
        "symmetric", description="eprop: learning-signal weights (W_out or fixed random)")
    eprop_update: Literal["batch", "step"] = Field(
        "batch", description="eprop: apply the weight update once per batch, or online "
        "every eprop_update_every time steps within the batch (all samples in step)")
    eprop_update_every: int = Field(
        1, ge=1, description="eprop_update=step: time steps (of data.dt ms) between "
        "updates; one optimiser step each, with that window's share of the gradient")
    surrogate: Literal["fast_sigmoid", "arctan"] = Field(
        "fast_sigmoid", description="bptt: surrogate derivative of the spike")
    surrogate_slope: float = Field(10.0, gt=0, description="bptt: surrogate steepness")
    calibrate: Literal["deep", "all", "none"] = Field(
        "deep", description="data-driven init before epoch 1: scale the input weights of "
        "these hidden layers until each fires at calibrate_hz on the first training batch "
        "(deep: every hidden layer after the first, which keeps model.input_weight_mean; "
        "all: every hidden layer; none: random init only)")
    calibrate_hz: float = Field(
        40.0, gt=0, description="calibrated layers' mean firing rate in Hz (spikes per "
        "neuron per second)")
    amp: Literal["none", "bf16", "fp16"] = Field(
        "none", description="bptt only: automatic mixed precision; the matrix products "
        "run in bfloat16 / float16 while membrane state, spikes, loss and weights stay "
        "float32 (fp16 adds loss scaling); none: float32 throughout")

    @model_validator(mode="after")
    def _amp_needs_bptt(self) -> TrainConfig:
        if self.amp != "none" and self.method != "bptt":
            raise ValueError(
                f"train.amp={self.amp} needs train.method=bptt: the {self.method} kernels "
                "compute in float32 (their spike times and adjoints are not safe in half "
                "precision); set train.amp=none or train.method=bptt")
        return self


class RunConfig(_Strict):
    """Everything needed to reproduce a run."""

    seed: int = Field(0, ge=0, le=2**32 - 1, description="random seed (0 .. 2**32-1)")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    stdp: StdpConfig = Field(default_factory=StdpConfig)


DATASET_PRESETS: dict[str, dict[str, Any]] = {
    # five input channels with one spike each need stronger input weights to drive spikes
    "yinyang": {"model": {"input_weight_mean": 3.0, "input_weight_std": 2.0}},
}
"""Per-dataset defaults applied beneath the user's config file and flags."""


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise SpikeforgeError(f"cannot set {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=0.001"`` -> (``"train.lr"``, 0.001) with the value parsed as YAML."""
    if "=" not in text:
        raise SpikeforgeError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SpikeforgeError(f"override {text!r}: value is not valid YAML ({exc})") from exc


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config (or the defaults), apply dotted overrides, and validate."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise SpikeforgeError(f"cannot read config {path}: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise SpikeforgeError(
                f"config {path} is not valid YAML{where}; fix the syntax"
            ) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise SpikeforgeError(f"config {path} must be a YAML mapping of sections")
        tree = loaded
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    data_name = tree.get("data", {}).get("name", DataConfig().name) if isinstance(
        tree.get("data"), dict) else DataConfig().name
    tree = _merge(DATASET_PRESETS.get(data_name, {}), tree)
    try:
        config = RunConfig.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpikeforgeError(f"invalid config value {where}: {first['msg']}") from exc
    check_finite(config)
    spec = config.model.network_spec(input_units(config.model, 1), 2, config.data.dt,
                                     config.train.loss == "first_spike")
    spec.validate()
    check_method_options(config)
    check_step_count(config)
    return config


MAX_STEPS = 100_000
"""Most time steps per sample a run may simulate (beyond: memory runs out, not an error)."""

_DEFAULT_WINDOW_MS = {"shd": 1400.0, "ssc": 1000.0}


def _non_finite(tree: Any, path: str = "") -> str | None:
    """Dotted path of the first NaN or infinite number in a dumped config, else None."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = ((str(i), v) for i, v in enumerate(tree))
    else:
        return path if isinstance(tree, float) and not math.isfinite(tree) else None
    for key, value in items:
        found = _non_finite(value, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def check_finite(config: RunConfig) -> None:
    """Raise :class:`SpikeforgeError` naming the first NaN or infinite config value."""
    where = _non_finite(config.model_dump(mode="python"))
    if where is not None:
        raise SpikeforgeError(f"invalid config value {where}: NaN and infinity are not "
                              "allowed; give a finite number")


def check_step_count(config: RunConfig) -> None:
    """Raise :class:`SpikeforgeError` when ``data.max_time_ms / data.dt`` exceeds
    :data:`MAX_STEPS` (the dense [batch, time, neurons] buffers would not fit)."""
    data = config.data
    window = data.max_time_ms or _DEFAULT_WINDOW_MS.get(data.name)
    if window is None or data.dt <= 0:
        return
    steps = math.ceil(window / data.dt)
    if steps > MAX_STEPS:
        raise SpikeforgeError(
            f"data.max_time_ms / data.dt = {window:g} / {data.dt:g} gives {steps} time steps "
            f"per sample (at most {MAX_STEPS}); raise data.dt or lower data.max_time_ms")


def check_method_options(config: RunConfig) -> None:
    """Raise :class:`SpikeforgeError` for options the chosen train.method cannot do."""
    method = config.train.method
    if config.model.train_tau and method != "bptt":
        raise SpikeforgeError(
            "model.train_tau=true: trainable taus need train.method=bptt; "
            "set train.method=bptt or model.train_tau=false")
    if config.model.neuron == "adlif" and config.model.adlif_learn and method != "bptt":
        raise SpikeforgeError(
            "model.adlif_learn=true: learned a, b, tau_w need train.method=bptt (EventProp "
            "gives gradients for the weights only); set train.method=bptt or "
            "model.adlif_learn=false")
    if method == "eprop" and config.train.loss == "first_spike":
        raise SpikeforgeError(
            "train.loss=first_spike needs train.method=eventprop; e-prop trains an LI "
            "readout: use a readout loss (sum, sum_exp, max)")
    if method == "bptt" and config.train.loss == "first_spike":
        raise SpikeforgeError(
            "train.loss=first_spike needs train.method=eventprop (spike-time gradients); "
            "use a readout loss (sum, sum_exp, max) with bptt")


def dump_config(config: RunConfig) -> str:
    """YAML text of the fully resolved config."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


RESUME_IGNORED: tuple[str, ...] = ("train.threads", "train.device", "data.data_dir",
                                    "data.download")
"""Config fields that do not change a run's results: a run, fold or sweep may resume with
different values (where the data lives, whether to fetch it, how many CPU threads, which
device: checkpoints are device-independent, results agree up to float tolerance)."""


def semantic_config(tree: dict[str, Any]) -> dict[str, Any]:
    """A dumped config (``model_dump(mode="json")`` or a saved ``config.yaml``) with the
    defaults of this version filled in and :data:`RESUME_IGNORED` left out: two runs with
    equal semantic configs compute the same thing. Raises :class:`SpikeforgeError` if
    ``tree`` is not a valid config of this version."""
    try:
        full = RunConfig.model_validate(tree).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpikeforgeError(f"the saved config is not valid for this spikeforge version "
                              f"({where}: {first['msg']})") from exc
    for dotted in RESUME_IGNORED:
        section, key = dotted.split(".")
        full.get(section, {}).pop(key, None)
    return full


def config_differences(saved: dict[str, Any], config: RunConfig) -> list[str]:
    """Dotted paths of the semantic fields where ``saved`` and ``config`` differ."""
    a, b = semantic_config(saved), semantic_config(config.model_dump(mode="json"))
    differ = []
    for section in sorted(set(a) | set(b)):
        left, right = a.get(section), b.get(section)
        if isinstance(left, dict) and isinstance(right, dict):
            differ += [f"{section}.{key}" for key in sorted(set(left) | set(right))
                       if left.get(key) != right.get(key)]
        elif left != right:
            differ.append(section)
    return differ
