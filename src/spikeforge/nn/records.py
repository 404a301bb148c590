"""Spike records: how spiking layers hand sparse spikes and timing gradients to consumers.

Every spikeforge LIF output tensor (dense spikes, or an empty "token" tensor when the
dense output is switched off) carries a :class:`SpikeRecord` as the attribute
``_spikeforge_record``. A consumer that understands spikes (a spikeforge layer, a loss on
spike times, the spike-count regulariser) reads the events from the record and, in its
backward pass, *adds* dL/dt_k for every spike k to ``record.dldt`` instead of returning a
dense gradient. The producing layer's backward (which autograd runs after all consumers)
then folds these timing sensitivities into its EventProp jumps. This keeps gradients
exact and memory O(spikes) while composing with ordinary torch autograd.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from spikeforge.events import Events

RECORD_ATTRIBUTE = "_spikeforge_record"


@dataclass
class SpikeRecord:
    """Spikes of one layer for one forward pass, plus the timing gradient of each spike.

    events: the spikes (flat CSR; ``events.isyn``/``extra`` hold the neuron model's
        per-spike values).
    dt: time step in ms.
    from_layer: True for a spiking layer's output (its timing gradient flows back into
        that layer's EventProp jumps), False for network input events (no producer).
    dldt: [E] accumulated dL/dt_k (ms^-1 units of the loss) from consumers, in the
        events' float dtype.
    """

    events: Events
    dt: float
    from_layer: bool = True
    dldt: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        dtype = np.result_type(self.events.value.dtype, np.float32)
        self.dldt = np.zeros(self.events.n_events, dtype=dtype)


def attach(tensor: torch.Tensor, record: SpikeRecord) -> torch.Tensor:
    """Mark ``tensor`` as carrying ``record`` and return it."""
    setattr(tensor, RECORD_ATTRIBUTE, record)
    return tensor


def record_of(tensor: torch.Tensor) -> SpikeRecord | None:
    """The spike record carried by ``tensor``, if it came straight from a spikeforge layer."""
    return getattr(tensor, RECORD_ATTRIBUTE, None)


def event_input(events: Events, dtype: torch.dtype = torch.float32,
                dt: float = 1.0) -> torch.Tensor:
    """Wrap sparse input events (binned with step ``dt`` ms) as a layer input; no dense
    [B, T, C] tensor is built.

    The returned tensor is empty (a token); layers read the events from its record.
    """
    token = torch.empty(0, dtype=dtype)
    return attach(token, SpikeRecord(events=events, dt=float(dt), from_layer=False))


def timing_from_dense(grad: torch.Tensor, events: Events, dt: float) -> np.ndarray:
    """Timing sensitivity dL/dt_k of each event [E] from a dense gradient G [B, T, units]
    of generic (non-spikeforge) consumers: moving an event from step n to n + 1 changes L
    by G[n+1] - G[n] (G[T] taken as 0), times the event's value, per ``dt`` ms."""
    g = grad.detach().cpu().numpy()
    b = events.sample_index()
    nxt = np.minimum(events.step + 1, events.n_steps - 1)
    g_next = np.where(events.step + 1 < events.n_steps, g[b, nxt, events.unit], 0.0)
    return (g_next - g[b, events.step, events.unit]) * events.value / dt
