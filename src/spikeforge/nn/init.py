"""Data-driven initialisation: input weights that make every spiking layer fire.

EventProp's gradients flow through spikes only, so a layer that stays silent on the
training data gets (and passes on) no gradient. :func:`calibrate_` shifts (or scales)
each spiking layer's input weights, layer by layer in the order the forward pass calls
them, until the layer's mean firing rate on a sample batch is near a target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch
from torch import nn

from spikeforge.errors import SpikeforgeError
from spikeforge.nn.records import record_of

MODES = ("shift", "scale")


@dataclass
class LayerCalibration:
    """What :func:`calibrate_` did to one spiking layer.

    name: the layer's name in ``model.named_modules()``.
    rate_before_hz, rate_after_hz: mean firing rate (spikes per neuron per second) on
        the batch before and after (after the layers before it were calibrated).
    adjustment: the offset added to every input weight (``mode="shift"``) or the factor
        they were multiplied by (``mode="scale"``).
    forward_passes: how many forward passes the search took.
    reached: whether the rate ended within the tolerance of the target.
    mode: ``"shift"`` or ``"scale"`` (what ``adjustment`` means).
    """

    name: str
    rate_before_hz: float
    rate_after_hz: float
    adjustment: float
    forward_passes: int
    reached: bool
    mode: str = "shift"

    def describe(self) -> str:
        """One line, e.g. ``"layers.1: 1.1 -> 40.1 Hz (input weights x 3.4)"``."""
        change = (f"x {self.adjustment:.3g}" if self.mode == "scale"
                  else f"{self.adjustment:+.3g}")
        missed = "" if self.reached else "; target not reached"
        return (f"{self.name}: {self.rate_before_hz:.1f} -> {self.rate_after_hz:.1f} Hz "
                f"(input weights {change}{missed})")


class _Probe:
    """Forward hooks that count each weighted module's output spikes (if it has any)."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = {name: m for name, m in model.named_modules()
                        if isinstance(m._parameters.get("weight"), nn.Parameter)}
        self.order: list[str] = []  # first-call order of the modules that spiked
        self.spikes: dict[str, tuple[int, int, int, int]] = {}
        self._handles = [m.register_forward_hook(self._hook(name))
                         for name, m in self.modules.items()]

    def _hook(self, name: str) -> Callable:
        def hook(module, inputs, output) -> None:
            record = record_of(output)
            if record is None and getattr(getattr(module, "params", None), "spiking", False):
                record = getattr(module, "last_record", None)  # BPTT: dense spikes only
            events = getattr(record, "events", None)
            if events is None:  # not a spiking layer (a readout, a plain torch module)
                return
            if name not in self.spikes:
                self.order.append(name)
            self.spikes[name] = (events.n_events, events.n_batch, events.n_steps,
                                 events.n_units)
        return hook

    def rate_hz(self, name: str) -> float:
        """Mean rate (Hz) of layer ``name`` in the last forward pass."""
        n_spikes, n_batch, n_steps, n_units = self.spikes[name]
        dt_ms = float(self.modules[name].dt)
        return n_spikes / max(n_batch * n_steps * n_units, 1) / (dt_ms * 1e-3)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _search(rate_at: Callable[[float], float], start: float, step: float, target: float,
            tol: float, max_passes: int, mode: str) -> tuple[float, float, int]:
    """Bracket then bisect the adjustment whose rate is ``target`` (rate assumed
    non-decreasing in it). Returns (best adjustment, its rate, passes used)."""
    passes, best = 0, (start, math.inf, math.inf)  # (adjustment, rate, |error|)

    def evaluate(a: float) -> float:
        nonlocal passes, best
        rate = rate_at(a)
        passes += 1
        if abs(rate - target) < best[2]:
            best = (a, rate, abs(rate - target))
        return rate

    def done() -> bool:
        return best[2] <= tol * target or passes >= max_passes

    def move(a: float, up: bool, k: int) -> float:  # the k-th bracketing step from start
        if mode == "scale":
            return a * 2.0 ** (k if up else -k)
        return a + (step * 2.0 ** (k - 1)) * (1 if up else -1)

    up = evaluate(start) < target
    lo = hi = start
    k = 1
    while not done():
        a = move(start, up, k)
        rate = evaluate(a)
        if (rate >= target) == up:  # crossed the target: bracket found
            lo, hi = (hi, a) if up else (a, lo)
            break
        lo = hi = a
        k += 1
    else:
        return best[0], best[1], passes
    while not done():
        mid = math.sqrt(lo * hi) if mode == "scale" else 0.5 * (lo + hi)
        if evaluate(mid) < target:
            lo = mid
        else:
            hi = mid
    return best[0], best[1], passes


@torch.no_grad()
def calibrate_(model: nn.Module, batch, target_hz: float = 10.0, *, mode: str = "shift",
               tol: float = 0.1, max_passes: int = 40,
               layers: Collection[str] | None = None) -> list[LayerCalibration]:
    """Adjust every spiking layer's input weights in place so that it fires at about
    ``target_hz`` on ``batch``; returns what was done per layer.

    Works on any model whose spiking layers are spikeforge layers with an input weight
    ``weight`` (an ``[out, in]`` parameter) and a step ``dt`` in ms, e.g.
    ``torch.nn.Sequential(snn.LIF(700, 256), snn.LI(256, 20))`` or a
    :class:`~spikeforge.nn.SpikingNetwork`. Layers are calibrated one at a time in the
    order the forward pass calls them, each with the layers before it already
    calibrated; non-spiking layers (LI readouts, plain torch modules) are left as they are.

    Args:
        model: the network; called as ``model(batch)`` (in eval mode, without gradients;
            its training flag is restored).
        batch: a representative input, e.g. dense ``[B, T, features]`` spikes or an
            :class:`~spikeforge.events.Events` batch for a SpikingNetwork.
        target_hz: mean firing rate to aim for (spikes per neuron per second).
        mode: ``"shift"`` adds one offset to all input weights of a layer (moves the mean
            drive; works from all-zero or silent initialisations), ``"scale"`` multiplies
            them by one factor (keeps their sign pattern).
        tol: accepted relative distance from the target (0.1: within 10 %).
        max_passes: forward passes allowed per layer (bracketing plus bisection).
        layers: names (as in ``model.named_modules()``, e.g. ``"layers.1"``) of the
            spiking layers to calibrate; the others keep their weights. None: all.
    """
    if mode not in MODES:
        raise SpikeforgeError(f"calibrate_: unknown mode {mode!r}; choose one of {MODES}")
    if not (target_hz > 0 and math.isfinite(target_hz)):
        raise SpikeforgeError(f"calibrate_: target_hz must be a positive rate, got {target_hz!r}")
    was_training = model.training
    model.eval()
    probe = _Probe(model)
    try:
        model(batch)
        if not probe.order:
            raise SpikeforgeError(
                "calibrate_: no spiking spikeforge layer with an input weight ran in the "
                "forward pass; nothing to calibrate")
        chosen = list(probe.order) if layers is None else _chosen(probe.order, layers)
        rates_before = {name: probe.rate_hz(name) for name in chosen}
        return [_calibrate_layer(model, batch, probe, name, rates_before[name], target_hz,
                                 mode, tol, max_passes)
                for name in chosen]
    finally:
        probe.remove()
        model.train(was_training)


def _chosen(order: list[str], layers: Collection[str]) -> list[str]:
    """The names of ``layers`` in forward order; an error names one that is not a spiking
    layer with an input weight that ran in the forward pass."""
    missing = [name for name in layers if name not in order]
    if missing:
        raise SpikeforgeError(
            f"calibrate_: layer {missing[0]!r} is not a spiking layer with an input weight "
            f"that ran in the forward pass; choose among {order}")
    return [name for name in order if name in set(layers)]


def _calibrate_layer(model, batch, probe: _Probe, name: str, rate_before: float,
                     target_hz: float, mode: str, tol: float,
                     max_passes: int) -> LayerCalibration:
    weight = probe.modules[name].weight
    original = weight.detach().clone()
    if mode == "scale" and not torch.any(original != 0):
        raise SpikeforgeError(
            f"calibrate_: layer {name!r} has all-zero input weights, which scaling cannot "
            f"change; use mode='shift'")

    def rate_at(adjustment: float) -> float:
        weight.copy_(original * adjustment if mode == "scale" else original + adjustment)
        model(batch)
        return probe.rate_hz(name)

    fan_in = original.shape[-1] if original.dim() > 1 else 1
    step = float(original.std()) if original.numel() > 1 else 0.0
    step = step if step > 0 else 1.0 / math.sqrt(fan_in)
    start = 1.0 if mode == "scale" else 0.0
    best, rate, passes = _search(rate_at, start, step, target_hz, tol, max_passes, mode)
    rate = rate_at(best)  # leave the best weights in place (and its rate in the record)
    return LayerCalibration(name, rate_before, rate, best, passes + 1,
                            abs(rate - target_hz) <= tol * target_hz, mode)
