"""Energy and cost accounting: operation counts, platform energy models, measurements."""

from spikeforge.energy.counting import (
    LayerOps,
    NetworkOps,
    count_network_ops,
    dense_macs,
    fan_out,
    sops_from_counts,
    sops_from_events,
)

__all__ = [
    "LayerOps",
    "NetworkOps",
    "count_network_ops",
    "dense_macs",
    "fan_out",
    "sops_from_counts",
    "sops_from_events",
]
