"""Convolutional LIF layers and average pooling: dense maps, gradients, config checks."""

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import spikeforge.nn as snn
from gradcheck_utils import compare, fd_gradient
from spikeforge.engine import Events
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.model.connectivity import ConvSpec
from spikeforge.nn.conv import (
    conv_matrix,
    conv_matrix_reference,
    make_conv,
    make_pooled,
    pool_matrix,
    unpool_columns,
)
from spikeforge.train import readout_loss

needs_bptt = pytest.mark.skipif(
    "method" not in inspect.signature(snn.LIF.__init__).parameters,
    reason="the LIF/LI method='bptt' option (nn/bptt.py) is not in this checkout")


def test_dense_maps_equal_conv2d_and_avg_pool():
    spec = ConvSpec((2, 7, 6), channels=3, kernel=3, stride=2, padding=1, pool=2)
    kernel = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    image = torch.randn(4, 2, 7, 6, dtype=torch.float64)
    expected = F.conv2d(image, kernel, stride=2, padding=1)
    assert expected.shape[1:] == spec.out_shape
    dense = image.reshape(4, -1) @ conv_matrix(kernel, spec).T
    torch.testing.assert_close(dense, expected.reshape(4, -1))
    pooled = dense @ pool_matrix(spec, torch.float64).T
    torch.testing.assert_close(pooled, F.avg_pool2d(expected, 2).reshape(4, -1))
    assert pooled.shape[1] == int(np.prod(spec.pooled_shape))


@pytest.mark.parametrize("shape, channels, kernel, stride, padding, pool", [
    ((2, 7, 6), 3, 3, 2, 1, 2),   # odd sizes: pooling drops the last row
    ((1, 8, 8), 4, 3, 1, 1, 2),
    ((3, 5, 9), 2, 5, 1, 2, 3),
    ((1, 4, 4), 2, 4, 1, 0, 1),   # kernel covers the whole image
])
def test_gathered_maps_equal_the_identity_basis_reference(shape, channels, kernel, stride,
                                                          padding, pool):
    """The index-gather conv matrix and pooling fold equal conv2d / avg_pool2d applied to
    every one-hot input (the simple reference), values and kernel gradients."""
    spec = ConvSpec(shape, channels, kernel, stride, padding, pool)
    kernel_t = torch.randn(channels, shape[0], kernel, kernel, dtype=torch.float64,
                           requires_grad=True)
    fast, reference = conv_matrix(kernel_t, spec), conv_matrix_reference(kernel_t, spec)
    torch.testing.assert_close(fast, reference)
    probe = torch.randn_like(reference)
    (grad_fast,) = torch.autograd.grad((fast * probe).sum(), kernel_t)
    (grad_ref,) = torch.autograd.grad((reference * probe).sum(), kernel_t)
    torch.testing.assert_close(grad_fast, grad_ref)
    pooled_w = torch.randn(5, int(np.prod(spec.pooled_shape)), dtype=torch.float64)
    torch.testing.assert_close(unpool_columns(pooled_w, spec),
                               pooled_w @ pool_matrix(spec, torch.float64))


def _image_events(rng, n_batch, shape, dt, n_steps, window_ms=8.0):
    n_units = int(np.prod(shape))
    samples = []
    for _ in range(n_batch):
        units = rng.choice(n_units, size=n_units * 2 // 3, replace=False)
        times = rng.uniform(0.0, window_ms, size=units.size)
        samples.append((np.round(times / dt).astype(int), units))
    return Events.from_lists(samples, n_steps, n_units, np.float64)


def _conv_net(dt, method, seed):
    conv = ConvSpec((1, 4, 4), channels=2, kernel=3, pool=2)  # 2 x 2 x 2 = 8 neurons
    torch.manual_seed(seed)
    how = {} if method == "eventprop" else {"method": method}
    hidden = snn.LIF(16, conv.units, dt=dt, dense_output=False, **how).double()
    make_conv(hidden, conv, None, mean=1.6, std=0.6)
    readout = snn.LI(conv.units, 2, dt=dt, weight_std=2.0, **how).double()
    make_pooled(readout, conv, mean=0.0, std=2.0)
    return hidden, readout


def _check(loss_and_counts, params, half_width):
    for name, param in params:
        numeric, changed = fd_gradient(loss_and_counts, param.data, half_width, 5)
        assert changed == 0, f"{name}: perturbation changed spike counts"
        cosine, rel = compare(param.grad, numeric)
        assert cosine > 0.99, f"{name}: cosine {cosine:.4f}"
        assert rel < 0.05, f"{name}: relative error {rel:.4f}"


def test_eventprop_conv_kernel_gradient_matches_finite_differences():
    dt = 5e-4
    n_steps = int(20 / dt)
    events = _image_events(np.random.default_rng(0), 2, (1, 4, 4), dt, n_steps)
    hidden, readout = _conv_net(dt, "eventprop", 3)
    labels = torch.tensor([0, 1])

    def loss_and_counts():
        v = readout(hidden(snn.event_input(events, torch.float64)))
        return readout_loss(v, labels, "sum").item(), hidden.last_record.events.counts()

    _, counts = loss_and_counts()
    assert (counts > 0).mean() > 0.7, "most conv neurons must spike for a meaningful check"
    readout_loss(readout(hidden(snn.event_input(events, torch.float64))), labels,
                 "sum").backward()
    kernel = hidden.parametrizations.weight.original
    pooled = readout.parametrizations.weight.original
    assert kernel.shape == (2, 1, 3, 3) and pooled.shape == (2, 2)
    _check(loss_and_counts, [("kernel", kernel), ("pooled readout", pooled)], 0.02)


@needs_bptt
def test_bptt_conv_kernel_gradient_matches_finite_differences():
    """A conv LI layer has no spikes, so its BPTT gradient is exact: checks the kernel and
    pooling maps under the BPTT method."""
    conv = ConvSpec((1, 4, 4), channels=2, kernel=3, pool=2)
    torch.manual_seed(0)
    layer = snn.LI(16, conv.units, dt=0.5, method="bptt").double()
    make_conv(layer, conv, None, mean=0.5, std=1.0)
    readout = snn.LI(conv.units, 2, dt=0.5, method="bptt").double()
    make_pooled(readout, conv, mean=0.0, std=1.0)
    x = torch.from_numpy(
        _image_events(np.random.default_rng(1), 2, (1, 4, 4), 0.5, 40).to_dense())
    labels = torch.tensor([1, 0])

    def loss_and_counts():
        with torch.no_grad():
            out = readout(F.relu(layer(x)))  # any smooth consumer of V
        return readout_loss(out, labels, "sum").item(), np.zeros(1)

    readout_loss(readout(F.relu(layer(x))), labels, "sum").backward()
    _check(loss_and_counts, [("kernel", layer.parametrizations.weight.original),
                             ("pooled", readout.parametrizations.weight.original)], 1e-3)


@needs_bptt
def test_bptt_conv_runs_the_same_forward_as_eventprop():
    events = _image_events(np.random.default_rng(2), 3, (1, 4, 4), 1.0, 40, window_ms=20)
    hidden_ep, readout_ep = _conv_net(1.0, "eventprop", 5)
    hidden_bp, readout_bp = _conv_net(1.0, "bptt", 5)
    hidden_bp.load_state_dict(hidden_ep.state_dict())
    readout_bp.load_state_dict(readout_ep.state_dict())
    v_ep = readout_ep(hidden_ep(snn.event_input(events, torch.float64)))
    v_bp = readout_bp(hidden_bp(torch.from_numpy(events.to_dense())))
    assert hidden_ep.last_record.events.n_events > 10
    torch.testing.assert_close(v_bp.detach(), v_ep.detach())
    loss = readout_loss(v_bp, torch.tensor([0, 1, 0]), "sum")
    loss.backward()
    assert hidden_bp.parametrizations.weight.original.grad.abs().sum() > 0


DIGITS_CONV = {"model.input_shape": [1, 8, 8], "model.conv": [{"channels": 4, "kernel": 3,
                                                                "pool": 2}]}


def _config(**overrides):
    return load_config(None, {"data.name": "digits", **DIGITS_CONV, **overrides})


def test_config_builds_conv_network_and_round_trips_state():
    from spikeforge.nn import SpikingNetwork

    config = _config(**{"model.hidden": [16]})
    spec = config.model.network_spec(64, 10, 1.0, False)
    sizes = [layer.size for layer in spec.layers]
    assert sizes == [4 * 6 * 6, 16, 10]
    net = SpikingNetwork(spec)
    assert net.layers[0].weight.shape == (144, 64)
    assert net.layers[1].parametrizations.weight.original.shape == (16, 4 * 3 * 3)
    clone = SpikingNetwork(spec)
    clone.load_state_dict(net.state_dict())
    torch.testing.assert_close(clone.layers[0].weight, net.layers[0].weight)
    legacy = dict(net.state_dict())  # older checkpoints also held the dense pooling matrix
    legacy["layers.1.parametrizations.weight.0.in_pool"] = pool_matrix(spec.layers[0].conv)
    clone.load_state_dict(legacy)
    torch.testing.assert_close(clone.layers[1].weight, net.layers[1].weight)


def test_two_conv_stages_fold_the_first_pooling_into_the_second_kernel():
    """conv -> pool -> conv -> pool -> dense: each layer's dense weight equals the
    reference maps (conv2d on the identity basis, dense pooling matrix)."""
    from spikeforge.nn import SpikingNetwork

    config = _config(**{"model.conv": [{"channels": 3, "kernel": 3, "padding": 1, "pool": 2},
                                       {"channels": 4, "kernel": 3, "pool": 1}],
                        "model.hidden": [5]})
    net = SpikingNetwork(config.model.network_spec(64, 10, 1.0, False)).double()
    first, second = net.spec.layers[0].conv, net.spec.layers[1].conv
    assert second.in_shape == (3, 4, 4) and second.out_shape == (4, 2, 2)
    kernel = net.layers[1].parametrizations.weight.original
    expected = conv_matrix_reference(kernel, second) @ pool_matrix(first, torch.float64)
    torch.testing.assert_close(net.layers[1].weight, expected)
    assert net.layers[1].weight.shape == (16, 3 * 8 * 8)
    assert net.layers[2].weight.shape == (5, 16)  # pool 1: the dense layer reads all units
    assert not any("unpool" in key or "position" in key for key in net.state_dict())


@pytest.mark.parametrize("overrides, message", [
    ({"model.conv": [{"channels": 2, "kernel": 9}]}, "larger than its input"),
    ({"model.conv": [{"channels": 2, "kernel": 3, "pool": 7}]}, "pool 7 is larger"),
    ({"model.input_shape": [1, 8, 9]}, "has 72 units but the data has 64"),
    ({"model.input_shape": [8, 8]}, "[channels, height, width]"),
    ({"model.input_shape": None}, "model.conv needs model.input_shape"),
])
def test_bad_conv_configs_fail_at_build_time(overrides, message):
    tree = {**DIGITS_CONV, **overrides}
    if tree["model.input_shape"] is None:
        tree.pop("model.input_shape")
    with pytest.raises(SpikeforgeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config = load_config(None, {"data.name": "digits", **tree})
        config.model.network_spec(64, 10, 1.0, False).validate()


def test_weight_is_built_once_per_forward_and_edits_are_seen_outside(monkeypatch):
    """Inside one layer forward the dense weight is built once (the layer reads it for its
    dtype and for the kernel call); outside a forward every access rebuilds, so an edit
    through ``.data`` (as finite-difference checks do) is never hidden by a cache."""
    from spikeforge.nn.conv import ConvWeight

    conv = ConvSpec((1, 4, 4), channels=2, kernel=3, pool=2)
    layer = make_conv(snn.LIF(16, conv.units, dt=1.0), conv, None, mean=1.6, std=0.6)
    builds = []
    original_build = ConvWeight.build
    monkeypatch.setattr(ConvWeight, "build",
                        lambda self, k: builds.append(1) or original_build(self, k))
    events = _image_events(np.random.default_rng(0), 2, (1, 4, 4), 1.0, 20)
    layer(snn.event_input(events, torch.float32))
    assert len(builds) == 1
    kernel = layer.parametrizations.weight.original
    before = layer.weight.clone()
    kernel.data[0, 0, 1, 1] += 0.5
    changed = (layer.weight - before).abs() > 0
    assert changed.sum() == 4  # the centre tap of map 0: one input for each of its 2x2 outputs
    assert changed[:4].sum(dim=1).tolist() == [1, 1, 1, 1]  # units 0-3 are map 0
    assert len(builds) == 3


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big")
                                                      for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_recipe_builds_and_trains_one_batch_on_mnist_size_images(tmp_path):
    """configs/digits_conv.yaml on 28x28 images (tiny fake IDX files): the 16x28x28 conv
    layer's dense weight builds and one EventProp batch gives finite kernel gradients."""
    from pathlib import Path

    from spikeforge.data import iterate_batches
    from spikeforge.data.registry import load_data
    from spikeforge.experiments.loading import run_network, run_trainer

    rng = np.random.default_rng(0)
    for part, n in (("train", 20), ("t10k", 4)):
        images = np.where(rng.random((n, 28, 28)) < 0.2, rng.integers(1, 256, (n, 28, 28)), 0)
        _write_idx(tmp_path / f"{part}-images-idx3-ubyte", images)
        _write_idx(tmp_path / f"{part}-labels-idx1-ubyte", np.arange(n) % 10)
    recipe = Path(__file__).parents[1] / "configs" / "digits_conv.yaml"
    config = load_config(recipe, {"data.name": "mnist", "data.data_dir": str(tmp_path),
                                  "data.download": False, "model.input_shape": [1, 28, 28]})
    splits = load_data(config.data)
    net = run_network(config, splits)
    assert net.layers[0].weight.shape == (16 * 28 * 28, 784)
    assert net.layers[1].weight.shape == (128, 16 * 28 * 28)
    trainer = run_trainer(config, splits, net)
    events, labels = next(iter(iterate_batches(splits.train, 8, False)))
    loss, _ = trainer._loss_and_predictions(events, labels)
    loss.backward()
    grad = net.layers[0].parametrizations.weight.original.grad
    assert grad.shape == (16, 1, 3, 3) and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert net.layers[0].last_record.events.n_events > 0


@pytest.mark.slow
def test_digits_conv_recipe_trains_above_85_percent(tmp_path):
    """The documented recipe (EventProp, its configured epochs) end to end."""
    from pathlib import Path

    from rich.console import Console

    from spikeforge.experiments.runner import train_run

    recipe = Path(__file__).parents[1] / "configs" / "digits_conv.yaml"
    config = load_config(recipe, {"train.threads": 1})
    results = train_run(config, tmp_path / "run", console=Console(quiet=True))
    assert results["epochs"] == config.train.epochs
    assert results["test_accuracy"] > 0.85
