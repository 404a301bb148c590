"""Finite-difference helpers for spiking networks (spike-count preserving)."""

from __future__ import annotations

import numpy as np
import torch


def fd_gradient(loss_fn, param: torch.Tensor, half_width: float, n_points: int = 9):
    """Derivative of ``loss_fn()`` w.r.t. every entry of ``param`` by a quadratic fit over
    ``n_points`` perturbations in [-half_width, half_width] (averages out the spike-time
    quantisation of a time-stepped simulation). Returns (gradient, changed) where
    ``changed`` counts perturbations that changed the spike counts (must be 0)."""
    offsets = np.linspace(-half_width, half_width, n_points)
    grad = torch.zeros_like(param)
    with torch.no_grad():
        base_loss, base_counts = loss_fn()
        changed = 0
        flat = param.view(-1)
        for index in range(flat.numel()):
            values = []
            for offset in offsets:
                original = flat[index].item()
                flat[index] = original + offset
                value, counts = loss_fn()
                flat[index] = original
                values.append(value)
                changed += int(not np.array_equal(counts, base_counts))
            grad.view(-1)[index] = float(np.polyfit(offsets, values, 2)[1])
    return grad, changed


def compare(analytic: torch.Tensor, numeric: torch.Tensor) -> tuple[float, float]:
    """(cosine similarity, relative error) of two gradient tensors."""
    a, n = analytic.flatten().double(), numeric.flatten().double()
    cosine = float(a @ n / (a.norm() * n.norm()))
    rel = float((a - n).norm() / n.norm())
    return cosine, rel
