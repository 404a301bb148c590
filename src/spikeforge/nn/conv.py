"""Convolutional spiking layers and average pooling as weight parametrizations.

A conv layer is an ordinary :class:`~spikeforge.nn.LIF` (or LI) whose dense weight
``[out_units, in_units]`` is *computed* from a kernel ``[C_out, C_in, k, k]``: the
convolution applied to the identity basis of the input image (one-hot image per input
unit), so ``W[o, i]`` is the response of output unit o to a unit spike of input i. The
map is linear in the kernel, so dL/dW from either training method (EventProp engine or
surrogate BPTT) flows back to the kernel by autograd, and the fast dense engine runs
unchanged. Non-overlapping average pooling of a layer's spike maps is a fixed matrix
``P [pooled_units, units]``; it is folded into the *next* layer's weights (W_next @ P),
which is exactly average pooling of the spike trains.

Units are C-major flattened images: ``unit = (c * H + y) * W + x``.
Both maps are registered with :func:`torch.nn.utils.parametrize.register_parametrization`,
so the trainable tensor is ``layer.parametrizations.weight.original`` (saved in the
state_dict) and ``layer.weight`` is the derived dense matrix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from spikeforge.model.connectivity import ConvSpec


def conv_matrix(kernel: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
    """Dense equivalent ``[spec.units, spec.in_units]`` of conv2d with ``kernel``."""
    basis = torch.eye(spec.in_units, dtype=kernel.dtype).reshape(spec.in_units, *spec.in_shape)
    response = F.conv2d(basis, kernel, stride=spec.stride, padding=spec.padding)
    return response.reshape(spec.in_units, -1).T


def pool_matrix(spec: ConvSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Average pooling ``[pooled_units, units]`` of the conv layer's output maps."""
    basis = torch.eye(spec.units, dtype=dtype).reshape(spec.units, *spec.out_shape)
    return F.avg_pool2d(basis, spec.pool).reshape(spec.units, -1).T.contiguous()


class ConvWeight(nn.Module):
    """Parametrization kernel ``[C_out, C_in, k, k]`` -> dense weight (times the previous
    layer's pooling matrix, if any)."""

    def __init__(self, spec: ConvSpec, in_pool: torch.Tensor | None, mean: float, std: float):
        super().__init__()
        self.spec = spec
        self.register_buffer("in_pool", in_pool)
        c_in = spec.in_shape[0]
        fan_in = c_in * spec.kernel**2
        self._init = torch.empty(spec.channels, c_in, spec.kernel, spec.kernel).normal_(
            mean, std / math.sqrt(fan_in))

    def forward(self, kernel: torch.Tensor) -> torch.Tensor:
        weight = conv_matrix(kernel, self.spec)
        return weight if self.in_pool is None else weight @ self.in_pool.to(weight.dtype)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        """Called once at registration: the initial kernel (the dense init is discarded)."""
        return self._init.to(weight.dtype)


class PooledWeight(nn.Module):
    """Parametrization ``[out, pooled_units]`` -> ``[out, units]`` = original @ P.

    The initial weights are drawn for the pooled fan-in and multiplied by the pool area,
    so a pooled input drives the layer about as strongly as an unpooled one would."""

    def __init__(self, in_pool: torch.Tensor, out_features: int, mean: float, std: float,
                 area: int) -> None:  # fmt: skip
        super().__init__()
        self.register_buffer("in_pool", in_pool)
        fan_in = in_pool.shape[0]
        self._init = torch.empty(out_features, fan_in).normal_(
            mean, std / math.sqrt(fan_in)) * area

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight @ self.in_pool.to(weight.dtype)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return self._init.to(weight.dtype)


def make_conv(layer: nn.Module, spec: ConvSpec, in_pool: torch.Tensor | None,
              mean: float, std: float) -> nn.Module:  # fmt: skip
    """Turn a dense spikeforge layer ``[spec.units, in_units]`` into a conv layer."""
    parametrize.register_parametrization(layer, "weight", ConvWeight(spec, in_pool, mean, std))
    layer.conv_spec = spec
    return layer


def make_pooled(layer: nn.Module, in_pool: torch.Tensor, area: int, mean: float,
                std: float) -> nn.Module:  # fmt: skip
    """Make a dense layer read average-pooled input (weights over the pooled units)."""
    parametrize.register_parametrization(
        layer, "weight", PooledWeight(in_pool, layer.weight.shape[0], mean, std, area))
    return layer
