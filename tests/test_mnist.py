"""MNIST IDX reader, image encoders and the mnist loader on small IDX files."""

import gzip

import numpy as np
import pytest

from spikeforge.data import load_dataset
from spikeforge.data.encoding import encode_images, poisson_encode
from spikeforge.data.mnist import read_idx
from spikeforge.errors import SpikeforgeError


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, n_train=80, n_test=20):
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, (n, 28, 28))
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (folder / f"{part}-labels-idx1-ubyte").write_bytes(_idx(labels))


def test_read_idx_roundtrip_and_truncation(tmp_path):
    array = np.arange(24).reshape(2, 3, 4)
    path = tmp_path / "a-idx3-ubyte"
    path.write_bytes(_idx(array))
    np.testing.assert_array_equal(read_idx(path), array)
    path.write_bytes(_idx(array)[:-5])
    with pytest.raises(SpikeforgeError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(SpikeforgeError, match="bad magic"):
        read_idx(path)


@pytest.mark.parametrize("encoding", ["latency", "log_latency", "poisson"])
def test_mnist_loader_from_local_idx_files(tmp_path, encoding):
    _write_mnist(tmp_path)
    splits = load_dataset("mnist", 1.0, tmp_path, encoding=encoding, download=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (70, 10, 20)
    assert splits.train.n_inputs == 784 and splits.test.n_steps == 40
    events, labels = splits.test.collate([splits.test[i] for i in range(4)])
    assert events.n_events > 0 and labels.tolist() == [0, 1, 2, 3]


def test_mnist_missing_files_message(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_OFFLINE", "1")
    with pytest.raises(SpikeforgeError, match="put it at .*train-images-idx3-ubyte.gz"):
        load_dataset("mnist", 1.0, tmp_path)


def test_image_encoders_on_any_shape():
    images = np.zeros((2, 3, 4))
    images[0, 0, 0], images[0, 2, 3], images[1, 1, 1] = 1.0, 0.5, 0.01
    lin = encode_images(images, "latency", dt=1.0, t_max_ms=10.0, n_steps=20)
    np.testing.assert_array_equal(lin[0][0], [0, 5])
    np.testing.assert_array_equal(lin[0][1], [0, 11])
    log = encode_images(images, "log_latency", dt=1.0, t_max_ms=10.0, n_steps=20)
    assert log[0][0].tolist() == [0, 2] and log[1][0].tolist() == [10]  # ln2/ln100 * 10
    rates = poisson_encode(np.full((1, 2, 2), 0.2), 5000, 1.0, max_rate_hz=100.0, seed=1)
    counts = np.bincount(rates[0][1], minlength=4)
    assert counts == pytest.approx([100] * 4, rel=0.2)  # 20 Hz over 5 s
    with pytest.raises(SpikeforgeError, match="exceeds one spike per step"):
        poisson_encode(np.ones((1, 2)), 10, 1.0, max_rate_hz=2000.0, seed=0)
    with pytest.raises(SpikeforgeError, match="unknown encoding"):
        encode_images(images, "rank", 1.0, 10.0, 20)
