"""Vectorised torch time loops for converted integrate-and-fire networks.

All neurons have threshold 1 (weights are normalised, see :mod:`.ifnet`); one time step
is one update of every active population; a spike reaches the next stage in the same
step. Inputs ``x`` are ``[B, *input_shape]`` in [0, 1]. Three codes:

* ``rate``: input neurons are IF neurons driven by the constant current ``x``; hidden IF
  neurons integrate ``V += g_l(s_{l-1})`` (bias every step) and *reset by subtraction*
  (``V -= 1`` on a spike), starting from ``V = v_init``. After ``T`` steps a neuron's
  spike count / ``T`` approximates its normalised ReLU activation (clipped to [0, 1]).
  The output stage integrates without threshold; prediction = arg-max of its potential.
* ``ttfs`` (time-to-first-spike, one spike per neuron at most): time is cut into windows
  of ``W`` steps, one per stage. In window ``l`` stage ``l`` integrates: a spike at step
  ``k`` of the window opens a constant synaptic current ``w / W`` that lasts to the end of
  the window, so the potential at the end is ``sum_i w_i (1 - k_i / W) + b``. In window
  ``l + 1`` the neuron gets a ramp ``1 / W`` per step and fires once when ``V >= 1``: it
  spikes at ``k = ceil((1 - V) W)`` (rounded), i.e. it encodes ``a = 1 - k / W``, the ReLU
  of its potential quantised to ``1 / W``; potentials <= 0 never fire (ReLU).
* ``fs`` (few-spike neurons, Stöckl & Maass 2021): each neuron gets ``K`` steps; at step
  ``t = 1..K`` it spikes if ``V >= T(t)``, then ``V -= h(t) z``, and each spike carries
  ``d(t)``; the binary code ``T(t) = h(t) = d(t) = 2^-t`` on the normalised range [0, 1)
  (the closed-form choice for ReLU; Stöckl & Maass fit them by gradient descent) with a
  half-LSB offset so values are rounded. Stages run in windows of ``K`` steps as above.

Total latency: ``T`` for rate, ``(number of stages) x W`` for ttfs and ``x K`` for fs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.convert.ifnet import ConvertedNetwork
from spikeforge.errors import SpikeforgeError

METHODS = ("rate", "ttfs", "fs", "fs-fit")
"""Conversion codes; ``fs-fit`` is ``fs`` with per-population K and scale fitted on training
data (:mod:`spikeforge.convert.fs_fit`)."""


@dataclass
class SimResult:
    """Outcome of one simulation of a batch.

    Attributes:
        steps: latencies (total time steps) at which predictions were read.
        predictions: int64 ``[len(steps), B]`` arg-max of the output at each latency.
        spike_counts: per spiking population (input first, then hidden stages), float64
            ``[len(steps), n_units]`` spikes summed over the batch up to each latency.
        output: ``[B, n_classes]`` final output potential.
        rates: per hidden stage, ``[B, *out_shape]`` decoded normalised activations
            (rate: spikes / T; ttfs: 1 - k / W; fs: sum of d(t) z(t)).
    """

    steps: list[int]
    predictions: torch.Tensor
    spike_counts: list[np.ndarray]
    output: torch.Tensor
    rates: list[torch.Tensor]


def _flat_sum(spikes: torch.Tensor) -> torch.Tensor:
    return spikes.reshape(spikes.shape[0], -1).sum(0, dtype=torch.float64)


@torch.no_grad()
def simulate_rate(net: ConvertedNetwork, x: torch.Tensor, n_steps: int,
                  record: list[int] | None = None, v_init: float = 0.5) -> SimResult:
    """Rate-coded IF network with reset by subtraction over ``n_steps`` steps."""
    record = sorted(set(record or []) | {n_steps})
    if record[0] < 1:
        raise SpikeforgeError("rate simulation needs at least 1 time step")
    hidden = net.stages[:-1]
    v_in = torch.full_like(x, v_init)
    v = [torch.full((len(x), *s.out_shape), v_init) for s in hidden]
    counts = [torch.zeros_like(v_in)] + [torch.zeros_like(vh) for vh in v]
    v_out = torch.zeros(len(x), *net.stages[-1].out_shape)
    preds, snaps = [], []
    for step in range(1, n_steps + 1):
        v_in += x
        s = (v_in >= 1.0).to(x.dtype)
        v_in -= s
        counts[0] += s
        for i, stage in enumerate(hidden):
            v[i] += stage.current(s)
            s = (v[i] >= 1.0).to(x.dtype)
            v[i] -= s
            counts[i + 1] += s
        v_out += net.stages[-1].current(s)
        if step in record:
            preds.append(v_out.reshape(len(x), -1).argmax(1))
            snaps.append([_flat_sum(c).numpy() for c in counts])
    return SimResult(record, torch.stack(preds), _stack(snaps), v_out.reshape(len(x), -1),
                     [c / n_steps for c in counts[1:]])


def _stack(snaps: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.stack([snap[i] for snap in snaps]) for i in range(len(snaps[0]))]


@torch.no_grad()
def simulate_ttfs(net: ConvertedNetwork, x: torch.Tensor, window: int) -> SimResult:
    """Time-to-first-spike IF network, ``window`` steps per stage (one spike per neuron)."""
    if window < 1:
        raise SpikeforgeError("ttfs needs at least 1 time step per layer window")
    offset = 0.5 / window
    value = x + offset  # input neurons: their "potential" is the pixel value
    counts: list[torch.Tensor] = []
    decoded: list[torch.Tensor] = []
    for stage in net.stages:
        fired = torch.zeros_like(value, dtype=torch.bool)
        code = torch.zeros_like(value)
        current = torch.zeros(len(x), *stage.out_shape)
        potential = stage.bias.expand_as(current).clone()
        for k in range(window):
            spikes = (value + k / window >= 1.0) & ~fired
            fired |= spikes
            code += spikes * (1.0 - k / window)
            current += stage.synaptic(spikes.to(x.dtype))
            potential += current / window
        counts.append(_flat_sum(fired.to(torch.float64)))
        decoded.append(code)
        value = potential + offset
    out = potential.reshape(len(x), -1)
    steps = window * len(net.stages)
    return SimResult([steps], out.argmax(1)[None], [c.numpy()[None] for c in counts], out,
                     decoded[1:])


def fs_code(value: torch.Tensor, k_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Few-spike coding of ``value`` (normalised, [0, 1)) over ``k_steps`` steps.

    Returns (spikes ``[k_steps, *value.shape]`` bool, decoded ``sum_t d(t) z(t)``).
    """
    v = value + 2.0 ** -(k_steps + 1)
    spikes, decoded = [], torch.zeros_like(value)
    for t in range(1, k_steps + 1):
        level = 2.0**-t
        z = v >= level
        v = v - level * z
        decoded += level * z
        spikes.append(z)
    return torch.stack(spikes), decoded


def fs_bits(k_steps: int | Sequence[int], n_populations: int) -> list[int]:
    """Per-population K: an int is used for every population, a sequence must have one
    entry per spiking population (input first)."""
    bits = [int(k_steps)] * n_populations if isinstance(k_steps, int) else \
        [int(k) for k in k_steps]
    if len(bits) != n_populations:
        raise SpikeforgeError(f"fs needs one K per spiking population ({n_populations}), got "
                              f"{len(bits)}")
    if min(bits) < 1:
        raise SpikeforgeError("fs needs at least 1 time step per neuron")
    return bits


@torch.no_grad()
def simulate_fs(net: ConvertedNetwork, x: torch.Tensor, k_steps: int | Sequence[int],
                gains: Sequence[float] | None = None) -> SimResult:
    """Few-spike network (binary code, see module doc).

    ``k_steps``: K for every spiking population, or one K per population (input first);
    the latency is their sum. ``gains``: per population ``c_l`` (default 1): the code's
    thresholds, resets and spike values are ``c_l 2^-t`` (normalised units), i.e. the
    population codes [0, c_l) with step ``c_l 2^-K`` (``c_l < 1`` trades clipping of the
    largest activations for finer resolution).
    """
    bits = fs_bits(k_steps, len(net.stages))
    gains = [1.0] * len(bits) if gains is None else [float(g) for g in gains]
    if len(gains) != len(bits) or min(gains) <= 0:
        raise SpikeforgeError("fs gains must be positive, one per spiking population")
    value = x
    counts: list[torch.Tensor] = []
    decoded: list[torch.Tensor] = []
    for stage, k, gain in zip(net.stages, bits, gains, strict=True):
        spikes, code = fs_code(value / gain, k)
        potential = stage.bias.expand(len(x), *stage.out_shape).clone()
        for t in range(k):  # stage integrates the incoming spikes step by step
            potential += (gain * 2.0 ** -(t + 1)) * stage.synaptic(spikes[t].to(x.dtype))
        counts.append(_flat_sum(spikes.sum(0).to(torch.float64)))
        decoded.append(code * gain)
        value = potential
    out = potential.reshape(len(x), -1)
    return SimResult([sum(bits)], out.argmax(1)[None], [c.numpy()[None] for c in counts], out,
                     decoded[1:])
