"""A spiking layer that stays silent under EventProp training warns, naming the layer."""

import warnings

import pytest
import torch

import spikeforge.nn as snn
from spikeforge.nn.activity import reset_silent_warnings


def _shd_like(seed=0, n_batch=4, n_steps=200, n_in=700):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n_batch, n_steps, n_in, generator=generator) < 0.015).float()


def test_silent_default_layer_warns_once_naming_it():
    reset_silent_warnings()
    torch.manual_seed(0)
    hidden = snn.LIF(700, 64, recurrent=True, weight_mean=-1.0)
    with pytest.warns(UserWarning, match=r"LIF\(700 -> 64\) emitted no spike"):
        out = hidden(_shd_like())
    assert out.sum() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hidden(_shd_like(1))  # reported once per layer, not per batch


def test_active_or_inference_layers_do_not_warn():
    reset_silent_warnings()
    torch.manual_seed(0)
    active = snn.LIF(700, 64, weight_mean=3.0)
    silent = snn.LIF(700, 64, weight_mean=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert active(_shd_like()).sum() > 0
        with torch.no_grad():
            assert silent(_shd_like()).sum() == 0
