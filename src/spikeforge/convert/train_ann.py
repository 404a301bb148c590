"""Train the ReLU ANN that the conversion route starts from (Adam, cross-entropy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from spikeforge.convert.arch import build_ann
from spikeforge.convert.images import ImageSplits


@torch.no_grad()
def ann_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on images ``x`` [N, C, H, W], labels ``y``."""
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    return correct / max(len(x), 1)


def train_ann(arch: list[dict[str, Any]], splits: ImageSplits, epochs: int = 40,
              batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 1e-4,
              seed: int = 0, log: Callable[[dict[str, Any]], None] | None = None,
              ) -> tuple[nn.Sequential, list[dict[str, Any]]]:
    """Train a fresh network of ``arch`` on ``splits.train``; keeps the weights of the epoch
    with the best validation accuracy. Returns (model in eval mode, per-epoch metric rows)."""
    torch.manual_seed(seed)
    model = build_ann(arch)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    rows, best, best_state = [], -1.0, None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(splits.train_x), generator=gen)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            loss = loss_fn(model(splits.train_x[idx]), splits.train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        val = ann_accuracy(model, splits.val_x, splits.val_y)
        row = {"epoch": epoch + 1, "train_loss": total / len(order), "val_accuracy": val}
        rows.append(row)
        if log is not None:
            log(row)
        if val > best:
            best = val
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, rows
