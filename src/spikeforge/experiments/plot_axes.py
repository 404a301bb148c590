"""Axis conventions shared by the run plots and the sweep/CV reports."""

from __future__ import annotations

from matplotlib.ticker import MaxNLocator


def integer_epoch_axis(ax, epochs: list[int]) -> None:
    """Whole-number epoch ticks on ``ax``'s x axis; a single epoch gets an axis from
    epoch - 1 to epoch + 1 instead of matplotlib's 0.96-1.04."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs and min(epochs) == max(epochs):
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
