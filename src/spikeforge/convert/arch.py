"""ANN architecture descriptions (JSON-able) and ``MODEL.pt`` files that never run pickled code.

An architecture is a list of layer dicts, e.g.::

    [{"type": "flatten"}, {"type": "linear", "in": 64, "out": 128, "bias": true},
     {"type": "relu"}, {"type": "linear", "in": 128, "out": 10, "bias": true}]

Layer types: ``linear`` (in, out, bias), ``conv2d`` (in, out, kernel, padding, stride,
bias), ``batchnorm1d`` / ``batchnorm2d`` (features), ``avgpool2d`` (kernel, stride),
``flatten``, ``relu``, ``dropout`` (p). ``MODEL.pt`` holds ``{"format", "arch" (JSON
text), "input_shape", "data", "state_dict", "ann_test_accuracy"}`` and is read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spikeforge.atomic import atomic_path
from spikeforge.errors import SpikeforgeError

FORMAT = "spikeforge-ann-v1"


def build_module(layer: dict[str, Any]) -> nn.Module:
    """The torch module described by one layer dict."""
    kind = layer.get("type")
    try:
        if kind == "linear":
            return nn.Linear(int(layer["in"]), int(layer["out"]),
                             bias=bool(layer.get("bias", True)))
        if kind == "conv2d":
            return nn.Conv2d(int(layer["in"]), int(layer["out"]), int(layer["kernel"]),
                             stride=int(layer.get("stride", 1)),
                             padding=int(layer.get("padding", 0)),
                             bias=bool(layer.get("bias", True)))
        if kind == "batchnorm1d":
            return nn.BatchNorm1d(int(layer["features"]))
        if kind == "batchnorm2d":
            return nn.BatchNorm2d(int(layer["features"]))
        if kind == "avgpool2d":
            return nn.AvgPool2d(int(layer["kernel"]), stride=layer.get("stride"))
        if kind == "flatten":
            return nn.Flatten()
        if kind == "relu":
            return nn.ReLU()
        if kind == "dropout":
            return nn.Dropout(float(layer.get("p", 0.5)))
    except (KeyError, TypeError, ValueError) as exc:
        raise SpikeforgeError(f"architecture layer {layer!r} is missing or has a bad field "
                              f"({exc}); fix the model description") from exc
    raise SpikeforgeError(f"architecture layer type {kind!r} is unknown; use linear, conv2d, "
                          "batchnorm1d/2d, avgpool2d, flatten, relu or dropout")


def build_ann(arch: list[dict[str, Any]]) -> nn.Sequential:
    """``nn.Sequential`` of the described layers (fresh weights)."""
    if not isinstance(arch, list) or not arch:
        raise SpikeforgeError("architecture must be a non-empty list of layer dicts")
    return nn.Sequential(*(build_module(layer) for layer in arch))


def preset_arch(name: str, input_shape: tuple[int, ...], n_classes: int,
                hidden: tuple[int, ...] = (128,)) -> list[dict[str, Any]]:
    """Bundled architectures: ``mlp`` (Flatten, Linear+ReLU per ``hidden``, Linear) and
    ``cnn`` (two Conv3x3-BatchNorm-ReLU-AvgPool2 blocks with 16/32 channels, then an MLP
    head with ``hidden`` units) for images of ``input_shape`` = (C, H, W)."""
    channels, height, width = input_shape
    layers: list[dict[str, Any]] = []
    if name == "mlp":
        n_in = channels * height * width
        layers.append({"type": "flatten"})
    elif name == "cnn":
        c_in = channels
        for c_out in (16, 32):
            layers += [{"type": "conv2d", "in": c_in, "out": c_out, "kernel": 3, "padding": 1,
                        "bias": False},
                       {"type": "batchnorm2d", "features": c_out}, {"type": "relu"},
                       {"type": "avgpool2d", "kernel": 2}]
            c_in, height, width = c_out, height // 2, width // 2
        layers.append({"type": "flatten"})
        n_in = c_in * height * width
    else:
        raise SpikeforgeError(f"unknown ANN architecture {name!r}; choose mlp or cnn")
    for size in hidden:
        layers += [{"type": "linear", "in": n_in, "out": int(size), "bias": True},
                   {"type": "relu"}]
        n_in = int(size)
    layers.append({"type": "linear", "in": n_in, "out": n_classes, "bias": True})
    return layers


def save_ann(path: Path, model: nn.Module, arch: list[dict[str, Any]],
             input_shape: tuple[int, ...], data: str, test_accuracy: float | None) -> None:
    """Write ``MODEL.pt`` (state dict + JSON architecture) atomically."""
    state = {
        "format": FORMAT, "arch": json.dumps(arch), "input_shape": list(input_shape),
        "data": data, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "ann_test_accuracy": float(test_accuracy) if test_accuracy is not None else -1.0,
    }  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_ann(path: Path) -> tuple[nn.Sequential, dict[str, Any]]:
    """Read ``MODEL.pt`` without executing pickled code; returns (model in eval mode, meta).

    ``meta`` has ``arch``, ``input_shape`` (tuple), ``data`` and ``ann_test_accuracy``.
    """
    path = Path(path)
    if not path.is_file():
        raise SpikeforgeError(f"model file {path} does not exist; train one with "
                              "`spikeforge train-ann --data digits --out MODEL.pt`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the safe unpickler
        raise SpikeforgeError(f"model file {path} is unreadable or not a spikeforge ANN "
                              f"({type(exc).__name__}); re-create it with "
                              "`spikeforge train-ann`") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SpikeforgeError(f"model file {path} is not a spikeforge ANN file (format "
                              f"{FORMAT}); re-create it with `spikeforge train-ann`")
    try:
        arch = json.loads(state["arch"])
        model = build_ann(arch)
        model.load_state_dict(state["state_dict"])
    except (json.JSONDecodeError, KeyError, RuntimeError) as exc:
        raise SpikeforgeError(f"model file {path}: weights do not match the stored "
                              f"architecture ({type(exc).__name__}); re-create it") from exc
    model.eval()
    meta = {"arch": arch, "input_shape": tuple(int(v) for v in state["input_shape"]),
            "data": str(state.get("data", "")),
            "ann_test_accuracy": float(state.get("ann_test_accuracy", -1.0))}
    return model, meta
