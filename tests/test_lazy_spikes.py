"""A spiking layer's dense output is built only when a non-spikeforge operation reads it,
and behaves exactly as the dense tensor it stands for (values, gradients, conversions)."""

import copy
import io
import pickle

import numpy as np
import pytest
import torch

import spikeforge.nn as snn
from spikeforge.nn import functional
from spikeforge.nn.lazy_spikes import LazySpikes
from spikeforge.nn.records import record_of


def _net(seed: int = 0):
    torch.manual_seed(seed)
    hidden = snn.LIF(40, 30, recurrent=True, weight_mean=1.0, weight_std=1.0)
    readout = snn.LI(30, 5, weight_std=3.0)
    return hidden, readout, torch.nn.Linear(30, 5)


def _input(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(6, 50, 40, generator=g) < 0.08).float()


def _grads(mixed: bool):
    hidden, readout, linear = _net()
    s = hidden(_input())
    loss = readout(s).sum(1).logsumexp(1).mean()
    if mixed:  # generic torch consumers of the same spikes
        loss = loss + 0.01 * linear(s).pow(2).mean() + 1e-3 * s.sum()
    loss.backward()
    return s, [p.grad.clone() for p in (hidden.weight, hidden.recurrent_weight,
                                        readout.weight)]


def test_output_feeding_a_spikeforge_layer_is_never_built():
    s, grads = _grads(mixed=False)
    assert isinstance(s, LazySpikes) and not s.materialised
    assert record_of(s) is not None and s.shape == (6, 50, 30) and s.requires_grad
    assert all(bool(g.abs().sum() > 0) for g in grads)


@pytest.mark.parametrize("mixed", [False, True])
def test_gradients_equal_those_of_the_eager_dense_output(monkeypatch, mixed):
    lazy_s, lazy = _grads(mixed)
    monkeypatch.setattr(functional, "LazySpikes",
                        lambda build, shape, dtype: build())  # the former eager output
    eager_s, eager = _grads(mixed)
    assert type(eager_s) is torch.Tensor
    assert lazy_s.materialised is mixed
    for a, b in zip(lazy, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_values_and_conversions_match_the_spike_record():
    hidden, _, _ = _net()
    s = hidden(_input())
    dense = record_of(s).events.to_dense(np.float32)
    assert not s.materialised
    np.testing.assert_array_equal(s.detach().numpy(), dense)
    assert s.materialised
    np.testing.assert_array_equal(np.asarray(s.detach()), dense)
    assert s.tolist() == dense.tolist()
    assert float(s.detach().sum()) == dense.sum() and s[2, 10:20].shape == (10, 30)
    with pytest.raises(RuntimeError, match="requires grad"):
        s.numpy()
    for back in (pickle.loads(pickle.dumps(s.detach())), copy.deepcopy(s.detach())):
        assert type(back) is torch.Tensor
        np.testing.assert_array_equal(back.numpy(), dense)
    buffer = io.BytesIO()
    torch.save(s.detach(), buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(torch.load(buffer).numpy(), dense)
    assert repr(s.detach()) == repr(torch.from_numpy(dense))


def test_detached_output_carries_no_record_and_no_gradient():
    hidden, readout, _ = _net()
    s = hidden(_input())
    d = s.detach()
    assert record_of(d) is None and not d.requires_grad
    readout(d).sum().backward()
    assert hidden.weight.grad is None and readout.weight.grad is not None
