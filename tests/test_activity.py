"""warn_if_silent: one UserWarning per silent layer name, naming the layer and the fix."""

import warnings

import pytest

from spikeforge.nn import activity


@pytest.fixture(autouse=True)
def _fresh():
    activity.reset_silent_warnings()
    yield
    activity.reset_silent_warnings()


def _caught(calls) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, n_spikes in calls:
            activity.warn_if_silent(name, n_spikes)
    return caught


def test_silent_layer_warns_with_name_and_fix():
    (w,) = _caught([("hidden LIF(700 -> 256)", 0)])
    assert w.category is UserWarning
    text = str(w.message)
    assert "hidden LIF(700 -> 256)" in text
    assert "no gradient can flow" in text
    assert "spikeforge.nn.init.calibrate_" in text and "weight_mean" in text


def test_once_per_layer_name():
    caught = _caught([("a", 0), ("a", 0), ("b", 0), ("a", 0), ("b", 0)])
    assert [str(w.message).split()[2] for w in caught] == ["a", "b"]


def test_layers_with_spikes_do_not_warn_or_use_up_the_warning():
    assert _caught([("a", 3), ("a", 1)]) == []
    assert len(_caught([("a", 0)])) == 1


def test_reset_makes_layers_warn_again():
    assert len(_caught([("a", 0)])) == 1
    assert _caught([("a", 0)]) == []
    activity.reset_silent_warnings()
    assert len(_caught([("a", 0)])) == 1
