"""Events.from_dense (compiled, parallel) is identical to the numpy.nonzero reference."""

import numpy as np
import pytest
import torch

from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events

FIELDS = ("ptr", "step", "unit", "value")


def _assert_identical(fast: Events, ref: Events) -> None:
    assert (fast.n_batch, fast.n_steps, fast.n_units) == (ref.n_batch, ref.n_steps, ref.n_units)
    for name in FIELDS:
        a, b = getattr(fast, name), getattr(ref, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert fast.isyn is None


def _mixed_input(rng, shape, dtype) -> np.ndarray:
    """Sparse spike counts up to 3, negative currents, sample 1 (if any) all zero."""
    x = np.where(rng.random(shape) < 0.1, rng.integers(1, 4, shape), 0).astype(dtype)
    x[rng.random(shape) < 0.05] = -rng.random() - 0.5
    x[1:2] = 0
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 37, 11), (1, 300, 3), (7, 1, 40), (3, 90, 1)])
def test_from_dense_matches_reference(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    x = _mixed_input(rng, shape, dtype)
    fast, ref = Events.from_dense(x), Events.from_dense_reference(x)
    _assert_identical(fast, ref)
    assert ref.n_events > 0
    if shape[0] > 1:
        assert ref.ptr[2] == ref.ptr[1]  # the empty sample
    assert fast.value.max() > 1 and fast.value.min() < 0
    np.testing.assert_array_equal(fast.to_dense(), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int16, np.uint8,
                                   np.bool_])
@pytest.mark.parametrize("shape", [(4, 50, 37), (3, 20, 700), (2, 30, 3), (2, 9, 1)])
def test_sparse_rows_word_scan_matches_reference(dtype, shape):
    """Rows at SHD-like density (<= WORD_SCAN_MAX_DENSITY) take the 64-bit word scan:
    odd row lengths put row starts and ends inside words; denser rows are mixed in."""
    rng = np.random.default_rng(shape[2])
    x = (rng.random(shape) < 0.015).astype(dtype)
    x[0, : shape[1] // 3] = (rng.random((shape[1] // 3, shape[2])) < 0.5)  # dense rows
    if np.dtype(dtype).kind == "f":
        x[rng.random(shape) < 0.01] = -0.0  # non-zero word bits, zero value
        x[x == 1] *= rng.integers(1, 4, int((x == 1).sum()))
    fast, ref = Events.from_dense(x), Events.from_dense_reference(x)
    _assert_identical(fast, ref)
    assert ref.n_events > 0


def test_word_scan_of_a_misaligned_tensor_view():
    """A contiguous torch view that starts 4 bytes into a 64-bit word (rows of even length
    take the word scan)."""
    rng = np.random.default_rng(8)
    x = torch.from_numpy((rng.random((5, 40, 38)) < 0.02).astype(np.float32))
    view = x.reshape(-1)[1:].reshape(-1)[: 4 * 40 * 38].reshape(4, 40, 38)
    assert view.is_contiguous() and view.data_ptr() % 8 == 4
    _assert_identical(Events.from_dense(view), Events.from_dense_reference(view.numpy()))


def test_order_is_sample_then_step_then_unit():
    x = np.zeros((2, 3, 4), np.float32)
    x[1, 0, 3] = 2.0
    x[0, 2, 0] = -1.0
    x[0, 0, 2] = 0.5
    x[0, 0, 1] = 1.0
    ev = Events.from_dense(x)
    np.testing.assert_array_equal(ev.ptr, [0, 3, 4])
    np.testing.assert_array_equal(ev.step, [0, 0, 2, 0])
    np.testing.assert_array_equal(ev.unit, [1, 2, 0, 3])
    np.testing.assert_array_equal(ev.value, [1.0, 0.5, -1.0, 2.0])
    assert ev.ptr.dtype == np.int64 and ev.step.dtype == np.int32 and ev.unit.dtype == np.int32


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int64, np.float16])
def test_other_dtypes_match_reference(dtype):
    rng = np.random.default_rng(3)
    x = (rng.random((4, 25, 9)) < 0.1).astype(dtype)
    _assert_identical(Events.from_dense(x), Events.from_dense_reference(x))


@pytest.mark.parametrize("shape", [(0, 5, 3), (3, 0, 3), (3, 5, 0), (2, 4, 6)])
def test_empty_inputs(shape):
    x = np.zeros(shape, np.float32)
    fast = Events.from_dense(x)
    _assert_identical(fast, Events.from_dense_reference(x))
    assert fast.n_events == 0 and fast.ptr.shape == (shape[0] + 1,)


def test_signed_zero_and_nan_follow_nonzero():
    x = np.array([[[-0.0, np.nan, 0.0, 1e-30]]], np.float32)
    fast = Events.from_dense(x)
    np.testing.assert_array_equal(fast.unit, [1, 3])
    assert np.isnan(fast.value[0]) and fast.value[1] == np.float32(1e-30)


def test_non_contiguous_input():
    rng = np.random.default_rng(4)
    x = _mixed_input(rng, (6, 12, 30), np.float32).transpose(0, 2, 1)  # [6, 30, 12] view
    _assert_identical(Events.from_dense(x), Events.from_dense_reference(x))


def test_torch_tensor_input():
    rng = np.random.default_rng(5)
    x = _mixed_input(rng, (4, 50, 20), np.float32)
    tensor = torch.from_numpy(x.copy()).requires_grad_()
    _assert_identical(Events.from_dense(tensor), Events.from_dense_reference(x))


def test_wrong_rank_is_a_sentence():
    with pytest.raises(SpikeforgeError, match=r"\[batch, time, features\], got 2"):
        Events.from_dense(np.zeros((3, 4)))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_from_dense_if_sparse_decides_on_density(dtype):
    x = np.zeros((2, 10, 10), dtype)
    x[0, :, :3] = 1.0  # 30 of 200 entries: density 0.15
    sparse = Events.from_dense_if_sparse(x, 0.16)
    assert sparse is not None
    _assert_identical(sparse, Events.from_dense_reference(x))
    assert Events.from_dense_if_sparse(x, 0.15) is None  # at the threshold: dense
    assert Events.from_dense_if_sparse(np.zeros((0, 3, 4), dtype), 0.1).n_events == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.float16, bool])
def test_to_dense_sums_coincident_events_like_the_reference(dtype):
    """The compiled scatter of to_dense equals numpy.add.at, coincident events summed."""
    rng = np.random.default_rng(4)
    n_events = 300
    ptr = np.array([0, 120, 120, n_events])  # sample 1 has no events
    step = rng.integers(0, 6, n_events).astype(np.int32)
    unit = rng.integers(0, 5, n_events).astype(np.int32)  # 30 cells per sample: repeats
    value = rng.integers(1, 4, n_events).astype(np.float32)
    ev = Events(n_batch=3, n_steps=6, n_units=5, ptr=ptr, step=step, unit=unit, value=value)
    fast, ref = ev.to_dense(dtype), ev.to_dense_reference(dtype)
    assert fast.dtype == ref.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(fast, ref)
    if np.dtype(dtype) != np.bool_:
        assert fast.max() > 3  # repeated events were summed
        assert fast.sum() == value.sum()
    assert not fast[1].any()
