"""Accuracy against latency and synaptic operations for a converted network.

Per inference (means over the evaluated samples):
``spikes`` = input spikes + hidden spikes; ``sops`` = sum over spiking populations of
spikes x fan-out into the next stage (one synaptic operation per spike per non-zero
synapse, as in :mod:`spikeforge.energy.counting`); ``steps`` = latency in time steps.
The ANN reference is its accuracy and its multiply-accumulates per inference (weighted
layers; pooling additions are not counted).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from spikeforge.convert.fs_fit import FSCode
from spikeforge.convert.ifnet import ConvertedNetwork
from spikeforge.convert.simulate import METHODS, simulate_fs, simulate_rate, simulate_ttfs
from spikeforge.energy.counting import sops_from_counts
from spikeforge.errors import SpikeforgeError

FS_MAX_STEPS = 16
"""Largest few-spike K evaluated (float32 resolves ~2^-24; 16 bits is plenty)."""
RATE_DENSE_STEPS = 32
"""Rate code: every length up to this is evaluated, then powers of two."""


def latency_grid(method: str, n_steps: int, n_stages: int) -> list[int]:
    """Per-method simulation lengths to evaluate, up to ``n_steps`` total steps.

    rate: total steps 1, 2, 3, ..., 32, then 64, 128, ... and ``n_steps`` (one simulation
    records them all); ttfs: window W = 1, 2, 4, ... with ``n_stages x W <= n_steps``;
    fs and fs-fit: K (fs-fit: the largest K_l) = 1 .. min(n_steps // n_stages, 16).
    Returns the method's own parameter values (T for rate, W for ttfs, K for fs).
    """
    if method not in METHODS:
        raise SpikeforgeError(f"unknown conversion method {method!r}; choose "
                              f"{', '.join(METHODS)}")
    if method == "rate":
        grid = ([2**i for i in range(int(np.log2(max(n_steps, 1))) + 1)] + [n_steps]
                + list(range(1, min(n_steps, RATE_DENSE_STEPS) + 1)))
    else:
        top = n_steps // n_stages
        if method in ("fs", "fs-fit"):
            top = min(top, FS_MAX_STEPS)
        if top < 1:
            raise SpikeforgeError(f"--steps {n_steps} is too short for {method}: the network "
                                  f"has {n_stages} stages, needs at least {n_stages} steps")
        grid = (list(range(1, top + 1)) if method in ("fs", "fs-fit")
                else [2**i for i in range(int(np.log2(top)) + 1)] + [top])
    return sorted(set(grid))


def _sops(net: ConvertedNetwork, counts: list[np.ndarray]) -> np.ndarray:
    """SOPs summed over the batch, per latency row, from per-population spike counts."""
    total = np.zeros(len(counts[0]))
    for population, stage in zip(counts, net.stages, strict=False):
        total += sops_from_counts(np.rint(population).astype(np.int64), stage.fanout)
    return total


@torch.no_grad()
def evaluate_latency(net: ConvertedNetwork, x: torch.Tensor, y: torch.Tensor, method: str,
                     n_steps: int, batch_size: int = 500,
                     grid: list[int] | None = None,
                     codes: list[FSCode] | None = None) -> list[dict[str, Any]]:
    """Accuracy, spikes, SOPs and latency of ``net`` on (x, y) for each grid point.

    ``method="fs-fit"`` evaluates the fitted ``codes`` instead of a grid (see
    :func:`~spikeforge.convert.fs_fit.fit_fs_codes`); their rows also carry ``code``
    (``K_0/K_1/...``) and ``param`` is the largest K_l (the pipelined interval).
    Returns rows ``{method, param, steps, accuracy, spikes, sops}`` sorted by steps.
    """
    n_stages = len(net.stages)
    if method == "fs-fit":
        if not codes:
            raise SpikeforgeError("method fs-fit needs fitted codes (fit_fs_codes)")
        grid = [c.interval for c in codes]
    grid = grid or latency_grid(method, n_steps, n_stages)
    correct = np.zeros(len(grid))
    spikes = np.zeros(len(grid))
    sops = np.zeros(len(grid))
    steps: list[int] = []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        if method == "rate":
            results = [simulate_rate(net, xb, max(grid), record=grid)]
        elif method == "ttfs":
            results = [simulate_ttfs(net, xb, w) for w in grid]
        elif method == "fs-fit":
            results = [simulate_fs(net, xb, c.bits, c.gains) for c in codes or []]
        else:
            results = [simulate_fs(net, xb, k) for k in grid]
        preds = torch.cat([r.predictions for r in results])
        counts = [np.concatenate([r.spike_counts[p] for r in results])
                  for p in range(len(results[0].spike_counts))]
        correct += (preds == yb[None]).sum(1).numpy()
        spikes += sum(c.sum(1) for c in counts)
        sops += _sops(net, counts)
        steps = [s for r in results for s in r.steps]
    n = max(len(x), 1)
    rows = [{"method": method, "param": int(p), "steps": int(s), "accuracy": float(c / n),
             "spikes": float(k / n), "sops": float(o / n)}
            for p, s, c, k, o in zip(grid, steps, correct, spikes, sops, strict=True)]
    for row, code in zip(rows, codes or [], strict=False):
        row["code"] = code.label
    return sorted(rows, key=lambda r: r["steps"])


def steps_to_match(rows: list[dict[str, Any]], target: float, tolerance: float = 0.01
                   ) -> int | None:
    """Fewest steps from which on every evaluated latency is within ``tolerance`` of
    ``target`` (the accuracy stays within 1 point once reached); None if the longest
    simulation is not within it."""
    best = None
    for row in sorted(rows, key=lambda r: r["steps"], reverse=True):
        if row["accuracy"] < target - tolerance - 1e-12:
            break
        best = row["steps"]
    return best


def within_1pt(rows: list[dict[str, Any]], target: float
               ) -> tuple[int | None, dict[str, Any] | None]:
    """:func:`steps_to_match` at 1 point of ``target`` and the row at that latency."""
    within = steps_to_match(rows, target)
    return within, next((r for r in rows if r["steps"] == within), None)
