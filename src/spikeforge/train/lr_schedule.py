"""Per-batch learning-rate warm-up: the ease-in of mlGeNN's SHD recipe.

``train.lr_warmup: ease_in`` multiplies the learning rate of ``train.lr_schedule`` by

    f(k) = min(1, 1e-3 * 1.05**k),   k = epoch * batches_per_epoch + batch (global count)

so the first batch trains at lr / 1000 and the full rate is reached at k = 142
(1.05**142 > 1000 > 1.05**141). This is mlGeNN's ``EaseInSchedule`` callback of
``examples/event_prop/shd_delay_shift_blend.py`` (Nowotny, Turner & Knight 2025) with two
deliberate differences: mlGeNN's batch argument restarts at 0 every epoch (its ramp only
works because an SHD epoch has more than 142 batches), and it sets one batch to
1e-3 * 1.05**142 = 1.021 x lr before clamping; here the counter is global (continuous
across epochs, so a resumed run sees the same rates) and the factor is capped at 1.
"""

from __future__ import annotations

import math

EASE_IN_START = 1e-3
"""Fraction of the learning rate at global batch 0."""
EASE_IN_GROWTH = 1.05
"""Factor per batch."""
EASE_IN_BATCHES = math.ceil(math.log(1.0 / EASE_IN_START) / math.log(EASE_IN_GROWTH))
"""First global batch at the full rate (142)."""

WARMUPS = ("none", "ease_in")


def ease_in_factor(global_batch: int) -> float:
    """Multiplier of the learning rate at global batch ``global_batch`` (0-based)."""
    if global_batch < 0:
        raise ValueError(f"global_batch must be >= 0, got {global_batch}")
    if global_batch >= EASE_IN_BATCHES:
        return 1.0
    return min(1.0, EASE_IN_START * EASE_IN_GROWTH**global_batch)


def warmup_factor(warmup: str, epoch: int, batch: int, batches_per_epoch: int) -> float:
    """Multiplier for ``train.lr_warmup`` at ``batch`` (0-based) of ``epoch`` (0-based)."""
    if warmup == "none":
        return 1.0
    if warmup == "ease_in":
        return ease_in_factor(epoch * batches_per_epoch + batch)
    raise ValueError(f"unknown lr warm-up {warmup!r}; choose one of {', '.join(WARMUPS)}")
