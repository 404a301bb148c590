"""Training: losses, regularisers, the Trainer and checkpoints."""

from spikeforge.train.losses import (
    ALL_LOSSES,
    first_spike_loss,
    first_spike_times,
    readout_loss,
    readout_summary,
    silent_output_penalty,
    spike_count_penalty,
)

__all__ = [
    "ALL_LOSSES",
    "first_spike_loss",
    "first_spike_times",
    "readout_loss",
    "readout_summary",
    "silent_output_penalty",
    "spike_count_penalty",
]
