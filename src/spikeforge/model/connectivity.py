"""Structured connections: 2-D convolutions with average pooling, and synaptic delays.

Plain data with validation (no maths). Image-shaped spikes ``[batch, time, C, H, W]`` are
carried as ``[batch, time, C*H*W]`` units in C-major order (``unit = (c*H + y)*W + x``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.errors import SpikeforgeError

DELAY_MODES = ("interpolate", "round")


@dataclass(frozen=True)
class ConvSpec:
    """A 2-D convolution from an input image ``in_shape = (C, H, W)`` to ``channels`` maps,
    followed (for the *next* layer) by non-overlapping ``pool x pool`` average pooling.

    The layer's neurons are the unpooled maps: ``channels * out_h * out_w`` units with
    ``out_h = (H + 2 padding - kernel) // stride + 1``. Pooling is a fixed linear map folded
    into the next layer's weights, which therefore see ``pooled_shape``.
    """

    in_shape: tuple[int, int, int]
    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    pool: int = 1

    @property
    def in_units(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        span = 2 * self.padding - self.kernel
        return (self.channels, (h + span) // self.stride + 1, (w + span) // self.stride + 1)

    @property
    def units(self) -> int:
        return math.prod(self.out_shape)

    @property
    def pooled_shape(self) -> tuple[int, int, int]:
        c, h, w = self.out_shape
        return (c, h // self.pool, w // self.pool)

    def validate(self, where: str) -> None:
        """Raise :class:`SpikeforgeError` naming the first impossible setting."""
        if len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise SpikeforgeError(
                f"{where}: input shape must be [channels, height, width] >= 1, got "
                f"{list(self.in_shape)}; set model.input_shape, e.g. [1, 8, 8]")
        for name in ("channels", "kernel", "stride", "pool"):
            if getattr(self, name) < 1:
                raise SpikeforgeError(f"{where}: conv {name} must be >= 1, "
                                      f"got {getattr(self, name)}")
        if self.padding < 0:
            raise SpikeforgeError(f"{where}: conv padding must be >= 0, got {self.padding}")
        _, h, w = self.in_shape
        if self.kernel > min(h, w) + 2 * self.padding:
            raise SpikeforgeError(
                f"{where}: conv kernel {self.kernel} is larger than its input {h}x{w} "
                f"(padding {self.padding}); use a smaller kernel or more padding")
        _, out_h, out_w = self.out_shape
        if self.pool > min(out_h, out_w):
            raise SpikeforgeError(
                f"{where}: pool {self.pool} is larger than the conv output {out_h}x{out_w}; "
                f"use a smaller pool")


@dataclass(frozen=True)
class DelaySpec:
    """Learnable per-synapse delays of a layer's incoming (and recurrent) synapses.

    Attributes:
        max_ms: every delay lies in [0, max_ms] ms (must be shorter than the simulation).
        init: ``"uniform"`` (U[0, max_ms]) or a fixed initial delay in ms.
        learn: train the delays (False: fixed random delays).
        mode: ``"interpolate"`` (real-valued delays) or ``"round"`` (whole time steps).
    """

    max_ms: float
    init: str | float = "uniform"
    learn: bool = True
    mode: str = "interpolate"

    def validate(self, where: str, dt: float) -> None:
        if not (math.isfinite(self.max_ms) and self.max_ms >= 0):
            raise SpikeforgeError(
                f"{where}: delays max_ms must be a finite number of ms >= 0, got {self.max_ms!r}")
        if self.mode not in DELAY_MODES:
            raise SpikeforgeError(
                f"{where}: unknown delay mode {self.mode!r}; choose one of {DELAY_MODES}")
        if isinstance(self.init, str):
            if self.init != "uniform":
                raise SpikeforgeError(
                    f"{where}: delay init must be 'uniform' or a number of ms, got {self.init!r}")
        elif not (0 <= self.init <= self.max_ms):
            raise SpikeforgeError(
                f"{where}: delay init {self.init} ms is outside [0, max_ms={self.max_ms}]")

    def check_window(self, where: str, duration_ms: float) -> None:
        """Raise unless the longest delay fits inside a simulation of ``duration_ms``."""
        if self.max_ms >= duration_ms:
            raise SpikeforgeError(
                f"{where}: delays up to {self.max_ms:g} ms do not fit in the simulated window of "
                f"{duration_ms:g} ms; lower model.delays.max_ms below {duration_ms:g}")


def check_structure(n_inputs: int, layers, dt: float) -> None:
    """Validate the conv / delay settings of a layer stack (``LayerSpec`` objects with
    ``conv`` and ``delays`` attributes): shapes must chain from ``n_inputs`` through every
    conv (and its pooling) to the next layer."""
    units, pooled = n_inputs, None
    for index, layer in enumerate(layers):
        where = f"layer {index}"
        conv = getattr(layer, "conv", None)
        delays = getattr(layer, "delays", None)
        if conv is not None:
            conv.validate(where)
            expected = pooled if pooled is not None else units
            if conv.in_units != expected:
                raise SpikeforgeError(
                    f"{where}: conv input shape {list(conv.in_shape)} has {conv.in_units} units "
                    f"but its input has {expected}; set model.input_shape to match the data")
            if conv.units != layer.size:
                raise SpikeforgeError(
                    f"{where}: conv output {list(conv.out_shape)} has {conv.units} units but "
                    f"the layer size is {layer.size}")
            if not layer.neuron.spiking:
                raise SpikeforgeError(f"{where}: the readout cannot be convolutional")
        if delays is not None:
            delays.validate(where, dt)
        pooled = None
        if conv is not None and conv.pool > 1:
            pooled = math.prod(conv.pooled_shape)
        units = layer.size
