"""Training: losses, regularisers, the Trainer (plain settings in) and checkpoints."""

from spikeforge.train.losses import (
    ALL_LOSSES,
    first_spike_loss,
    first_spike_times,
    readout_loss,
    readout_summary,
    silent_output_penalty,
    spike_count_penalty,
)
from spikeforge.train.trainer import EvalResult, Trainer, TrainSettings

__all__ = [
    "ALL_LOSSES",
    "EvalResult",
    "TrainSettings",
    "Trainer",
    "first_spike_loss",
    "first_spike_times",
    "readout_loss",
    "readout_summary",
    "silent_output_penalty",
    "spike_count_penalty",
]
