"""benchmarks/simulators.py: fixed fan-in family, same spikes in spikeforge and NEST."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import simulators as sims  # noqa: E402


def test_family_has_fixed_fan_in_and_fires_near_10_hz():
    network, events = sims.family(300, n_batch=2, n_steps=400)
    w = network.layers[0].weight.detach().numpy()
    assert w.shape == (300, sims.FAMILY_INPUTS)
    np.testing.assert_array_equal(np.count_nonzero(w, axis=1), sims.FAN_IN)
    assert events.n_batch == 2 and events.n_steps == 400
    assert events.n_events == pytest.approx(2 * 400 * sims.FAMILY_INPUTS * sims.FAMILY_P,
                                            rel=0.1)
    import torch

    with torch.no_grad():
        network(events)
    spikes = network.spike_records()[0].events.n_events
    assert spikes / (2 * 300 * 0.4) == pytest.approx(10.0, rel=0.25)


def test_spikeforge_and_nest_spike_counts_identical(tmp_path):
    from spikeforge.errors import SpikeforgeError
    from spikeforge.export import simulator_export as se

    try:
        se.require("nest")
    except SpikeforgeError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"NEST not importable here: {exc}")
    network, events = sims.family(200, n_batch=2, n_steps=200)
    summary = sims.prepare("family-200", network, events, tmp_path)
    assert summary["neurons"] == 210 and summary["synapses"] == 200 * sims.FAN_IN + 200 * 10
    rows = [{**summary, **sims.run_one(sim, tmp_path, 1, 600)}
            for sim in ("spikeforge", "nest")]
    for row in rows:
        assert "error" not in row, row
        assert row["run_s"] > 0 and row["peak_rss_mb"] > 0 and row["threads"] == 1
        assert row["identical"] == 1.0 and row["spikes"] > 100
    assert rows[1]["spikes"] == rows[0]["spikes_spikeforge_float64"]
    table = sims._row(rows[1], rows[0])
    assert table.startswith("| family-200 | nest | 1 |") and table.count("|") == 13
    json.dumps(rows)  # JSON-serialisable records


def test_unknown_network_is_named():
    with pytest.raises(SystemExit, match="unknown network 'bogus'"):
        sims.build("bogus")
