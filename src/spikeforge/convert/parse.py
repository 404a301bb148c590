"""Split a trained ReLU network into affine stages, folding BatchNorm into the layer before.

A *stage* is the affine map between two ReLUs (or between the last ReLU and the output):
a sequence of Linear / Conv2d / AvgPool2d / Flatten ops. Each hidden stage becomes one
population of integrate-and-fire neurons; the last stage is the (non-spiking) output.
Dropout and Identity are dropped (identity in evaluation). Anything else is rejected.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from spikeforge.errors import SpikeforgeError

WEIGHTED = (nn.Linear, nn.Conv2d)
LINEAR_OPS = (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.Flatten)
IGNORED = (nn.Dropout, nn.Identity)


def _leaves(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    children = list(model.named_children())
    if not children:
        return [(prefix or type(model).__name__, model)]
    if not isinstance(model, nn.Sequential):
        raise SpikeforgeError(
            f"layer {prefix or type(model).__name__!r} ({type(model).__name__}) is a container "
            "that is not nn.Sequential; conversion needs a plain sequence of layers")
    out = []
    for name, child in children:
        out += _leaves(child, f"{prefix}.{name}" if prefix else name)
    return out


@torch.no_grad()
def fold_batchnorm(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """Copy of ``layer`` (Linear/Conv2d) with the eval-mode BatchNorm ``bn`` folded in:
    ``w' = w * g / s``, ``b' = (b - mean) * g / s + beta`` with ``s = sqrt(var + eps)``."""
    out = copy.deepcopy(layer)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else \
        1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    out.weight.copy_(layer.weight * scale.reshape(shape))
    out.bias = nn.Parameter((bias - bn.running_mean) * scale + shift)
    return out


def split_stages(model: nn.Module) -> list[list[nn.Module]]:
    """Affine stages of ``model`` (copies; BatchNorm folded). Raises
    :class:`SpikeforgeError` naming the first unsupported layer."""
    stages: list[list[nn.Module]] = [[]]
    for name, layer in _leaves(model):
        current = stages[-1]
        if isinstance(layer, IGNORED):
            continue
        if isinstance(layer, nn.ReLU):
            if not any(isinstance(op, WEIGHTED) for op in current):
                raise SpikeforgeError(f"layer {name!r} (ReLU) has no Linear/Conv2d before it "
                                      "since the previous ReLU; remove the extra ReLU")
            stages.append([])
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            if not current or not isinstance(current[-1], WEIGHTED):
                raise SpikeforgeError(
                    f"layer {name!r} ({type(layer).__name__}) does not directly follow a "
                    "Linear/Conv2d, so it cannot be folded; move it after one")
            current[-1] = fold_batchnorm(current[-1], layer)
        elif isinstance(layer, LINEAR_OPS):
            if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.dilation != (1, 1)
                                                 or layer.padding_mode != "zeros"):
                raise SpikeforgeError(f"layer {name!r} (Conv2d) uses groups/dilation/non-zero "
                                      "padding, which conversion does not support")
            current.append(copy.deepcopy(layer))
        else:
            raise SpikeforgeError(
                f"layer {name!r} ({type(layer).__name__}) is not supported by ANN->SNN "
                "conversion; use Linear, Conv2d, AvgPool2d, Flatten, BatchNorm, ReLU")
    if not stages[-1] or not any(isinstance(op, WEIGHTED) for op in stages[-1]):
        raise SpikeforgeError("the network must end with a Linear/Conv2d output layer after "
                              "its last ReLU")
    for stage in stages:
        for op in stage:
            op.eval()
            for p in op.parameters():
                p.requires_grad_(False)
    return stages
