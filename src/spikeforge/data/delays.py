"""Delay-line input expansion (Nowotny, Turner & Knight 2025).

The input is replicated ``copies`` times; copy k (k = 0 .. copies-1) is delayed by
``k * spacing_ms`` and occupies channels ``k * n_channels .. (k + 1) * n_channels - 1``.
A feed-forward layer then sees the recent past of every channel at once, which gives a
one-layer network access to temporal context without learnable delays. Events delayed
beyond the simulated window are dropped. Applied to every split (it changes the input
size), after any training augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.errors import SpikeforgeError


@dataclass(frozen=True)
class DelayLines:
    """``copies`` delayed replicas of the input, ``spacing_ms`` apart."""

    copies: int
    spacing_ms: float

    def __post_init__(self) -> None:
        if self.copies < 1:
            raise SpikeforgeError(f"delay_lines.copies must be >= 1, got {self.copies}")
        if self.spacing_ms < 0:
            raise SpikeforgeError(f"delay_lines.spacing_ms must be >= 0, got {self.spacing_ms}")

    def expand(
        self, sample: tuple[np.ndarray, np.ndarray], n_channels: int, n_steps: int, dt: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(steps [k], units [k]) -> (steps, units) with ``copies`` x channels; steps are
        shifted by ``round(k * spacing_ms / dt)`` and those >= ``n_steps`` dropped."""
        steps, units = (np.asarray(a, dtype=np.int64) for a in sample)
        shifts = np.round(np.arange(self.copies) * self.spacing_ms / dt).astype(np.int64)
        all_steps = (steps[None, :] + shifts[:, None]).ravel()
        all_units = (units[None, :] + n_channels * np.arange(self.copies)[:, None]).ravel()
        keep = all_steps < n_steps
        return all_steps[keep], all_units[keep]
