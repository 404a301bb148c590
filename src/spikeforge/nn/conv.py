"""Convolutional spiking layers and average pooling as weight parametrizations.

A conv layer is an ordinary :class:`~spikeforge.nn.LIF` (or LI) whose dense weight
``[out_units, in_units]`` is *computed* from a kernel ``[C_out, C_in, k, k]``:
``W[o, i]`` is the kernel tap that connects input unit i to output unit o (zero where
they are not connected), so ``W @ x`` is the convolution of the flattened image x. The
map is linear in the kernel, so dL/dW from either training method (EventProp engine or
surrogate BPTT) flows back to the kernel by autograd, and the fast dense engine runs
unchanged. Non-overlapping average pooling of a layer's spike maps is a fixed matrix
``P [pooled_units, units]``; it is folded into the *next* layer's weights (W_next @ P),
which is exactly average pooling of the spike trains.

Both maps are built by *gathering* with index tables precomputed once per layer, which
costs O(out_units x in_units) memory traffic per rebuild (the dense matrix itself) and
O(nonzeros) arithmetic: the kernel taps are scattered into the matrix, and W_next @ P
is a column gather of W_next divided by the pool area. (The first version ran conv2d on
an identity basis of in_units images and a dense W_next @ P product at every weight
access - O(in_units x units x k^2) and O(out x pooled x units) - which dominated the
training time.) :func:`conv_matrix_reference` and :func:`pool_matrix` keep that simple
form as the reference the tests compare against.

Units are C-major flattened images: ``unit = (c * H + y) * W + x``.
Both maps are registered with :func:`torch.nn.utils.parametrize.register_parametrization`,
so the trainable tensor is ``layer.parametrizations.weight.original`` (saved in the
state_dict; the index tables are not saved, they follow from the layer spec) and
``layer.weight`` is the derived dense matrix.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from spikeforge.model.connectivity import ConvSpec


def conv_index(spec: ConvSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tables of the conv matrix: flat positions ``i * units + o`` (the matrix is
    stored transposed, ``[in_units, units]`` contiguous, which is the presynaptic-major
    layout the engine kernels read, so handing it over needs no copy) and the flat kernel
    tap each one takes (both int64 ``[n_connections]``; taps that fall on the zero padding
    are left out)."""
    c_in, h, w = spec.in_shape
    c_out, out_h, out_w = spec.out_shape
    k = spec.kernel
    co, oy, ox, ci, ky, kx = np.meshgrid(np.arange(c_out), np.arange(out_h), np.arange(out_w),
                                         np.arange(c_in), np.arange(k), np.arange(k),
                                         indexing="ij")  # fmt: skip
    y = oy * spec.stride + ky - spec.padding
    x = ox * spec.stride + kx - spec.padding
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    out_unit = ((co * out_h + oy) * out_w + ox)[inside]
    in_unit = ((ci * h + y) * w + x)[inside]
    tap = (((co * c_in + ci) * k + ky) * k + kx)[inside]
    return torch.from_numpy(in_unit * spec.units + out_unit), torch.from_numpy(tap)


def conv_matrix(kernel: torch.Tensor, spec: ConvSpec,
                index: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Dense equivalent ``[spec.units, spec.in_units]`` of conv2d with ``kernel``
    (``index``: :func:`conv_index` of ``spec``, computed here if not given)."""
    position, tap = index if index is not None else conv_index(spec)
    flat = kernel.new_zeros(spec.in_units * spec.units)
    # in place on the fresh zeros (out-of-place index_put would copy the whole matrix)
    flat.index_put_((position.to(kernel.device),), kernel.reshape(-1)[tap.to(kernel.device)])
    return flat.view(spec.in_units, spec.units).T


def conv_matrix_reference(kernel: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
    """:func:`conv_matrix` computed the obvious way: conv2d of every one-hot input image."""
    basis = torch.eye(spec.in_units, dtype=kernel.dtype).reshape(spec.in_units, *spec.in_shape)
    response = F.conv2d(basis, kernel, stride=spec.stride, padding=spec.padding)
    return response.reshape(spec.in_units, -1).T


def unpool_index(spec: ConvSpec) -> torch.Tensor:
    """For each output unit of ``spec`` (int64 ``[spec.units]``), the pooled unit it is
    averaged into, or ``pooled_units`` for rows / columns the floor-division pooling
    drops."""
    c, h, w = spec.out_shape
    _, ph, pw = spec.pooled_shape
    ch, y, x = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    py, px = y // spec.pool, x // spec.pool
    pooled = (ch * ph + py) * pw + px
    dropped = (py >= ph) | (px >= pw)
    return torch.from_numpy(np.where(dropped, c * ph * pw, pooled).reshape(-1))


def unpool_columns(weight: torch.Tensor, spec: ConvSpec,
                   index: torch.Tensor | None = None) -> torch.Tensor:
    """``weight [out, pooled_units] @ pool_matrix(spec)`` -> ``[out, spec.units]``, as a
    column gather (``index``: :func:`unpool_index` of ``spec``)."""
    index = index if index is not None else unpool_index(spec)
    padded = F.pad(weight, (0, 1))  # the extra zero column feeds the dropped units
    # gather rows of the transpose: the result is [units, out] contiguous (engine layout)
    return (padded.T[index.to(weight.device)] / spec.pool**2).T


def pool_matrix(spec: ConvSpec, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Average pooling ``[pooled_units, units]`` of the conv layer's output maps (dense;
    the reference for :func:`unpool_columns`)."""
    basis = torch.eye(spec.units, dtype=dtype).reshape(spec.units, *spec.out_shape)
    return F.avg_pool2d(basis, spec.pool).reshape(spec.units, -1).T.contiguous()


class _BuiltWeight(nn.Module):
    """A parametrization that builds its dense weight (subclasses define ``build``) once
    per forward call of its layer.

    The layer reads ``layer.weight`` several times per forward (dtype, the kernel call);
    between the layer's forward pre-hook and its forward hook the first build is reused.
    Outside a forward every access rebuilds, so in-place edits of the trainable tensor
    (``kernel.data += h`` in finite-difference checks, optimiser steps) are always seen.
    """

    def __init__(self) -> None:
        super().__init__()
        self._in_forward = False
        self._built: torch.Tensor | None = None

    def begin_forward(self, *_: object) -> None:
        self._in_forward, self._built = True, None

    def end_forward(self, *_: object) -> None:
        self._in_forward, self._built = False, None

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        if self._in_forward and self._built is not None:
            return self._built
        weight = self.build(original)
        if self._in_forward:
            self._built = weight
        return weight

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # checkpoints from before the index tables stored the dense pooling matrix as a
        # buffer "in_pool"; it is fully determined by the layer spec, so it is dropped
        state_dict.pop(prefix + "in_pool", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def attach(self, layer: nn.Module) -> None:
        """Register this parametrization on ``layer.weight`` with its forward hooks."""
        parametrize.register_parametrization(layer, "weight", self)
        layer.register_forward_pre_hook(self.begin_forward)
        layer.register_forward_hook(self.end_forward, always_call=True)


class ConvWeight(_BuiltWeight):
    """Parametrization kernel ``[C_out, C_in, k, k]`` -> dense weight ``[units, in]``,
    where the input is the previous conv layer's output maps when ``pooled_from`` is
    given (its pooling folded in) and the image otherwise."""

    def __init__(self, spec: ConvSpec, pooled_from: ConvSpec | None, mean: float,
                 std: float) -> None:  # fmt: skip
        super().__init__()
        self.spec, self.pooled_from = spec, pooled_from
        position, tap = conv_index(spec)
        self.register_buffer("position", position, persistent=False)
        self.register_buffer("tap", tap, persistent=False)
        self.register_buffer("unpool", None if pooled_from is None else unpool_index(pooled_from),
                             persistent=False)  # fmt: skip
        c_in = spec.in_shape[0]
        fan_in = c_in * spec.kernel**2
        self._init = torch.empty(spec.channels, c_in, spec.kernel, spec.kernel).normal_(
            mean, std / math.sqrt(fan_in))

    def build(self, kernel: torch.Tensor) -> torch.Tensor:
        weight = conv_matrix(kernel, self.spec, (self.position, self.tap))
        if self.pooled_from is None:
            return weight
        return unpool_columns(weight, self.pooled_from, self.unpool)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        """Called once at registration: the initial kernel (the dense init is discarded)."""
        return self._init.to(weight.dtype)


class PooledWeight(_BuiltWeight):
    """Parametrization ``[out, pooled_units]`` -> ``[out, units]`` = original @ P.

    The initial weights are drawn for the pooled fan-in and multiplied by the pool area,
    so a pooled input drives the layer about as strongly as an unpooled one would."""

    def __init__(self, pooled_from: ConvSpec, out_features: int, mean: float,
                 std: float) -> None:  # fmt: skip
        super().__init__()
        self.pooled_from = pooled_from
        self.register_buffer("unpool", unpool_index(pooled_from), persistent=False)
        fan_in = math.prod(pooled_from.pooled_shape)
        self._init = torch.empty(out_features, fan_in).normal_(
            mean, std / math.sqrt(fan_in)) * pooled_from.pool**2

    def build(self, weight: torch.Tensor) -> torch.Tensor:
        return unpool_columns(weight, self.pooled_from, self.unpool)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return self._init.to(weight.dtype)


def make_conv(layer: nn.Module, spec: ConvSpec, pooled_from: ConvSpec | None,
              mean: float, std: float) -> nn.Module:  # fmt: skip
    """Turn a dense spikeforge layer ``[spec.units, in_units]`` into a conv layer;
    ``pooled_from``: the pooling conv layer feeding it (None: it reads the image)."""
    ConvWeight(spec, pooled_from, mean, std).attach(layer)
    layer.conv_spec = spec
    return layer


def make_pooled(layer: nn.Module, pooled_from: ConvSpec, mean: float,
                std: float) -> nn.Module:  # fmt: skip
    """Make a dense layer read the average-pooled output of conv layer ``pooled_from``
    (trainable weights over the pooled units)."""
    PooledWeight(pooled_from, layer.weight.shape[0], mean, std).attach(layer)
    return layer
