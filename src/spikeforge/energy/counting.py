"""Operation counting for SNNs and their equivalent ANNs (see ALGORITHMS.md section 7).

Conventions (all counts are per inference, i.e. per input sample):

* **SOP** (synaptic operation): one presynaptic event delivered over one synapse, i.e.
  an accumulate ``I_post += w``. Every spike (or input event) counts once per
  non-zero outgoing weight of its unit (its *fan-out*); a recurrent layer's spikes also
  count over their recurrent fan-out.
* **Neuron updates**: one state update of one neuron in one time step (the clock-driven
  cost that CPUs/GPUs pay whether or not a neuron spikes): ``n_neurons x n_steps``.
* **ANN MACs**: the equivalent ANN has the same layer sizes and one multiply-accumulate
  per weight. Two conventions are reported:
  ``per_inference`` = one pass (a feed-forward ANN on a static input), and
  ``per_step`` = one pass per time step (an ANN/RNN processing the same ``T``-step
  sequence), i.e. ``per_inference x n_steps``.

These functions are pure counting on :class:`~spikeforge.events.Events` and weight
arrays, reusable by any producer of spikes (trained SNNs, converted ANNs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events


def fan_out(weight: np.ndarray | torch.Tensor) -> np.ndarray:
    """Non-zero outgoing synapses per presynaptic unit.

    Args:
        weight: ``[out, in]`` weight matrix (torch convention).
    Returns:
        int64 ``[in]``: for each input unit, the number of non-zero weights leaving it.
    """
    w = weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    if w.ndim != 2:
        raise SpikeforgeError(f"fan_out: expected a 2-D [out, in] weight, got shape {w.shape}")
    return np.count_nonzero(w, axis=0).astype(np.int64)


def sops_from_counts(counts: np.ndarray, fanout: np.ndarray | int) -> np.ndarray:
    """Synaptic operations per sample from event counts.

    Args:
        counts: ``[B, units]`` number of events of each unit in each sample.
        fanout: ``[units]`` fan-out per unit, or one int for all units.
    Returns:
        int64 ``[B]``: sum over units of count x fan-out.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2:
        raise SpikeforgeError(f"sops_from_counts: counts must be [B, units], got {counts.shape}")
    fo = np.broadcast_to(np.asarray(fanout, dtype=np.int64), (counts.shape[1],))
    return counts @ fo


def sops_from_events(events: Events, fanout: np.ndarray | int) -> np.ndarray:
    """Synaptic operations per sample of an :class:`Events` batch (int64 ``[B]``)."""
    return sops_from_counts(events.counts(), fanout)


def dense_macs(n_in: int, n_out: int, recurrent: bool = False) -> int:
    """MACs of one pass through a dense layer ``n_in -> n_out`` (plus ``n_out x n_out``
    when recurrent)."""
    return n_in * n_out + (n_out * n_out if recurrent else 0)


@dataclass
class LayerOps:
    """Per-inference operation counts of one layer (means over the batch).

    ``input_events``: events arriving at the layer; ``sops``: synaptic operations those
    events (and, for recurrent layers, the layer's own spikes) cause on this layer's
    synapses; ``spikes``: spikes the layer emits (0 for an LI readout);
    ``neuron_updates``: ``size x n_steps``; ``macs_per_inference`` / ``macs_per_step``:
    the equivalent ANN layer's MACs under the two conventions.
    """

    name: str
    n_in: int
    size: int
    recurrent: bool
    input_events: float
    spikes: float
    sops: float
    neuron_updates: int
    macs_per_inference: int
    macs_per_step: int


@dataclass
class NetworkOps:
    """Operation counts of a network per inference (means over ``n_samples`` samples)."""

    n_samples: int
    n_steps: int
    dt_ms: float
    layers: list[LayerOps]

    @property
    def sops(self) -> float:
        return float(sum(layer.sops for layer in self.layers))

    @property
    def spikes(self) -> float:
        return float(sum(layer.spikes for layer in self.layers))

    @property
    def input_events(self) -> float:
        return float(self.layers[0].input_events) if self.layers else 0.0

    @property
    def neuron_updates(self) -> int:
        return int(sum(layer.neuron_updates for layer in self.layers))

    @property
    def macs_per_inference(self) -> int:
        return int(sum(layer.macs_per_inference for layer in self.layers))

    @property
    def macs_per_step(self) -> int:
        return int(sum(layer.macs_per_step for layer in self.layers))

    def to_dict(self) -> dict:
        return {
            "n_samples": self.n_samples, "n_steps": self.n_steps, "dt_ms": self.dt_ms,
            "input_events": self.input_events, "spikes": self.spikes, "sops": self.sops,
            "neuron_updates": self.neuron_updates,
            "macs_per_inference": self.macs_per_inference, "macs_per_step": self.macs_per_step,
            "layers": [asdict(layer) for layer in self.layers],
        }  # fmt: skip


@torch.no_grad()
def count_network_ops(network, events: Events) -> NetworkOps:
    """Run ``network`` (a :class:`~spikeforge.nn.SpikingNetwork`) on ``events`` and count
    the operations of each layer per inference (means over the batch).

    Input events of layer 0 are the data events; input events of layer k > 0 are the
    spikes of layer k - 1. SOPs of a layer = its input events x their fan-out into it
    (+ its own spikes x recurrent fan-out). Which layers spike and which are recurrent is
    read from the network's spec (``network.spec.layers[k]``), the spikes from
    ``network.spike_records()`` (one record per spiking layer, in order).
    """
    network.eval()
    network(events)
    records = iter(network.spike_records())
    rows: list[LayerOps] = []
    upstream, n_batch, n_steps = events, events.n_batch, events.n_steps
    for index, (layer, spec) in enumerate(zip(network.layers, network.spec.layers,
                                              strict=True)):
        in_sops = sops_from_events(upstream, fan_out(layer.weight))
        recurrent = bool(spec.recurrent)
        own = next(records).events if spec.neuron.spiking else None
        rec_sops = sops_from_events(own, fan_out(layer.recurrent_weight)) if recurrent else 0
        macs = dense_macs(layer.in_features, layer.out_features, recurrent)
        rows.append(LayerOps(
            name=f"layer{index}:{type(layer).__name__}", n_in=layer.in_features,
            size=layer.out_features, recurrent=recurrent,
            input_events=upstream.n_events / n_batch,
            spikes=(own.n_events / n_batch) if own is not None else 0.0,
            sops=float(np.mean(in_sops + rec_sops)),
            neuron_updates=layer.out_features * n_steps,
            macs_per_inference=macs, macs_per_step=macs * n_steps,
        ))  # fmt: skip
        if own is not None:
            upstream = own
    return NetworkOps(n_samples=n_batch, n_steps=n_steps, dt_ms=float(network.spec.dt),
                      layers=rows)
