"""The converted network: affine stages with data-based threshold normalisation.

Data-based normalisation (Diehl et al. 2015; Rueckauer et al. 2017): ``lambda_l`` is the
``percentile``-th percentile of the positive ReLU activations of stage ``l`` on a
calibration set (``lambda_0 = 1`` for inputs in [0, 1]). Stage ``l`` is rescaled to
``g_l(s) = f_l(lambda_{l-1} s) / lambda_l`` by multiplying the weight of its first
weighted op by ``lambda_{l-1}`` and dividing weight and bias of its last weighted op by
``lambda_l``, so every IF neuron has threshold 1 and a unit spike stands for an activation
of ``lambda_l``. The output stage is rescaled by ``lambda_{L-1}`` only (its scale does not
change the arg-max).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from spikeforge.convert.parse import WEIGHTED, split_stages
from spikeforge.errors import SpikeforgeError


def _weighted(ops: list[nn.Module]) -> list[nn.Module]:
    return [op for op in ops if isinstance(op, WEIGHTED)]


@torch.no_grad()
def _fanout(ops: nn.Sequential, in_shape: tuple[int, ...], chunk: int = 512) -> np.ndarray:
    """Non-zero synapses leaving each input unit of the affine map (int64 [prod(in_shape)]):
    one-hot inputs through the map with |weights| and no bias, non-zero outputs counted."""
    probe = nn.Sequential(*[_abs_copy(op) for op in ops])
    n_in = int(np.prod(in_shape))
    counts = np.empty(n_in, dtype=np.int64)
    for start in range(0, n_in, chunk):
        stop = min(start + chunk, n_in)
        eye = torch.zeros(stop - start, n_in)
        eye[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        out = probe(eye.reshape(-1, *in_shape)).reshape(stop - start, -1)
        counts[start:stop] = (out > 0).sum(1).numpy()
    return counts


def _abs_copy(op: nn.Module) -> nn.Module:
    import copy

    out = copy.deepcopy(op)
    if isinstance(op, WEIGHTED):
        out.weight.data = op.weight.data.abs()
        if out.bias is not None:
            out.bias.data.zero_()
    return out


def _macs(ops: list[nn.Module], in_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one ANN pass through the weighted ops of a stage."""
    x = torch.zeros(1, *in_shape)
    total = 0
    with torch.no_grad():
        for op in ops:
            y = op(x)
            if isinstance(op, nn.Linear):
                total += op.in_features * op.out_features
            elif isinstance(op, nn.Conv2d):
                kh, kw = op.kernel_size
                total += y[0].numel() * (op.in_channels // op.groups) * kh * kw
            x = y
    return total


@dataclass
class IFStage:
    """One converted stage: the rescaled affine map and its bookkeeping.

    Attributes:
        ops: rescaled affine map (input spikes ``[B, *in_shape]`` -> input current
            ``[B, *out_shape]``), bias included.
        bias: ``[*out_shape]`` the map's response to zero input (the bias part).
        in_shape / out_shape: per-sample shapes; fanout: int64 ``[prod(in_shape)]`` synapses
            per presynaptic unit; macs: ANN multiply-accumulates of the stage;
        scale: ``lambda_l`` (activation represented by one unit of membrane/spike).
    """

    ops: nn.Sequential
    bias: torch.Tensor
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    fanout: np.ndarray
    macs: int
    scale: float

    def current(self, spikes: torch.Tensor) -> torch.Tensor:
        """Affine input (bias included) for a batch of spike/value tensors."""
        return self.ops(spikes)

    def synaptic(self, spikes: torch.Tensor) -> torch.Tensor:
        """Linear part only (no bias)."""
        return self.ops(spikes) - self.bias


@dataclass
class ConvertedNetwork:
    """Integrate-and-fire network converted from a ReLU ANN (threshold 1 everywhere).

    ``stages[:-1]`` are IF populations, ``stages[-1]`` is the non-spiking output.
    """

    stages: list[IFStage]
    input_shape: tuple[int, ...]
    percentile: float
    scales: list[float] = field(default_factory=list)

    @property
    def ann_macs(self) -> int:
        return int(sum(stage.macs for stage in self.stages))

    @property
    def n_neurons(self) -> int:
        return int(sum(int(np.prod(s.out_shape)) for s in self.stages[:-1]))

    def layer_summary(self) -> list[dict]:
        return [{"stage": i, "in_shape": list(s.in_shape), "out_shape": list(s.out_shape),
                 "scale": s.scale, "macs": s.macs, "synapses": int(s.fanout.sum())}
                for i, s in enumerate(self.stages)]


@torch.no_grad()
def activation_scales(stages: list[list[nn.Module]], calibration: torch.Tensor,
                      percentile: float, max_values: int = 2_000_000,
                      batch_size: int = 512) -> list[float]:
    """``lambda_l`` per stage: percentile of the positive activations on ``calibration``."""
    if not 0 < percentile <= 100:
        raise SpikeforgeError(f"percentile must be in (0, 100], got {percentile}")
    collected: list[list[torch.Tensor]] = [[] for _ in stages]
    for start in range(0, len(calibration), batch_size):
        x = calibration[start : start + batch_size]
        for i, ops in enumerate(stages):
            x = nn.Sequential(*ops)(x)
            if i < len(stages) - 1:
                x = torch.relu(x)
            collected[i].append(x.reshape(-1))
    gen = np.random.default_rng(0)
    scales = []
    for values in collected:
        flat = torch.cat(values).numpy()
        flat = flat[flat > 0]
        if flat.size > max_values:
            flat = gen.choice(flat, max_values, replace=False)
        scales.append(float(np.percentile(flat, percentile)) if flat.size else 1.0)
    return scales


@torch.no_grad()
def convert_network(model: nn.Module, calibration: torch.Tensor,
                    percentile: float = 99.9) -> ConvertedNetwork:
    """Convert a trained ReLU network (eval mode) to a :class:`ConvertedNetwork`.

    Args:
        model: nn.Sequential (nested allowed) of Linear / Conv2d / AvgPool2d / Flatten /
            BatchNorm / ReLU / Dropout layers; inputs in [0, 1].
        calibration: ``[N, *input_shape]`` inputs for the activation percentiles.
        percentile: p of the p-th percentile normalisation (100 = max-norm).
    """
    model.eval()
    stages = split_stages(model)
    if calibration.ndim < 2 or len(calibration) == 0:
        raise SpikeforgeError("conversion needs a non-empty calibration batch [N, ...]")
    if float(calibration.min()) < 0 or float(calibration.max()) > 1:
        raise SpikeforgeError("conversion expects inputs scaled to [0, 1]; rescale the data")
    scales = activation_scales(stages, calibration, percentile)
    prev, shape = 1.0, tuple(calibration.shape[1:])
    out: list[IFStage] = []
    for i, ops in enumerate(stages):
        weighted = _weighted(ops)
        scale = scales[i] if i < len(stages) - 1 else prev
        weighted[0].weight.mul_(prev)
        weighted[-1].weight.div_(scale)
        if weighted[-1].bias is not None:
            weighted[-1].bias.div_(scale)
        seq = nn.Sequential(*ops).eval()
        bias = seq(torch.zeros(1, *shape))[0]
        out.append(IFStage(seq, bias, shape, tuple(bias.shape), _fanout(seq, shape),
                           _macs(ops, shape), scale))
        prev, shape = scale, tuple(bias.shape)
    return ConvertedNetwork(out, tuple(calibration.shape[1:]), percentile, scales)
