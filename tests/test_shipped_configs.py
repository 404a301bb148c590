"""Every recipe in configs/ is a valid run config (checked without its data)."""

from pathlib import Path

import pytest

from spikeforge.experiments.config import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_the_recipes_are_there():
    names = {p.stem for p in CONFIGS}
    assert {"shd_eventprop", "shd_adlif", "ssc_eventprop", "ssc_adlif"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipe_is_a_valid_config(path):
    config = load_config(path)
    assert config.train.epochs >= 1


def test_adlif_and_ssc_recipes_differ_from_their_base_only_where_they_say():
    base = load_config(CONFIGS[0].parent / "shd_eventprop.yaml").model_dump()
    adlif = load_config(CONFIGS[0].parent / "shd_adlif.yaml").model_dump()
    changed = {k for k in base["model"] if base["model"][k] != adlif["model"][k]}
    assert changed == {"neuron"} | ({"adlif_a", "adlif_b", "adlif_tau_w"}
                                    & {k for k in changed})
    assert base["train"] == adlif["train"] and base["data"] == adlif["data"]
    ssc = load_config(CONFIGS[0].parent / "ssc_adlif.yaml")
    assert ssc.data.name == "ssc" and ssc.model.neuron == "adlif" and ssc.model.hidden == [512]
