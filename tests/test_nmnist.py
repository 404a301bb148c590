"""N-MNIST binary reader and folder loader on files written in the dataset's format."""

from __future__ import annotations

import pytest

from spikeforge.data import nmnist
from spikeforge.data.event_arrays import make_events
from spikeforge.errors import SpikeforgeError


def record(x: int, y: int, p: int, t: int) -> bytes:
    """One 40-bit N-MNIST record, written bit by bit."""
    return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 255, t & 255])


def test_decode_reads_bit_layout_and_overflow(tmp_path):
    raw = (record(3, 5, 1, 0x7FFFFF) + record(33, 0, 0, 258)
           + record(0, 240, 0, 0) + record(1, 2, 1, 10))
    path = tmp_path / "00001.bin"
    path.write_bytes(raw)
    ev = nmnist.read_nmnist(path)
    assert ev["x"].tolist() == [3, 33, 1]
    assert ev["y"].tolist() == [5, 0, 2]
    assert ev["p"].tolist() == [1, 0, 1]
    assert ev["t"].tolist() == [0x7FFFFF, 258, 10 + 2**13]


def test_encode_round_trip():
    ev = make_events([1, 2], [3, 4], [100, 70000], [0, 1])
    back = nmnist.decode_nmnist(nmnist.encode_nmnist(ev))
    assert back.tolist() == ev.tolist()


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(record(1, 1, 1, 5) + b"\x01\x02")
    with pytest.raises(SpikeforgeError, match="truncated"):
        nmnist.read_nmnist(path)


def test_out_of_sensor_coordinate_is_an_error():
    with pytest.raises(SpikeforgeError, match="outside the 34x34"):
        nmnist.decode_nmnist(record(40, 1, 0, 5))


def write_folder(root, per_class: int = 2) -> None:
    for split in ("Train", "Test"):
        for digit in range(10):
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for k in range(per_class):
                ev = make_events([digit, 30], [k, 33], [1000 * digit + 500, 2500], [1, 0])
                (folder / f"{k:05d}.bin").write_bytes(nmnist.encode_nmnist(ev))


def test_load_folder_bins_lazily(tmp_path):
    write_folder(tmp_path)
    splits = nmnist.load(dt=1.0, data_dir=tmp_path, max_time_ms=20.0, val_fraction=0.5)
    assert len(splits.train) == 10 and len(splits.val) == 10 and len(splits.test) == 20
    assert splits.test.n_inputs == 2 * 34 * 34 and splits.test.n_steps == 20
    (steps, units), label = splits.test[7]
    assert label == 3
    # ON event (x=3, y=1) at 3.5 ms; OFF event (x=30, y=33) at 2.5 ms
    assert steps.tolist() == [2, 3]
    assert units.tolist() == [33 * 34 + 30, 34 * 34 + 1 * 34 + 3]


def test_missing_folder_says_where(tmp_path):
    with pytest.raises(SpikeforgeError, match="Train"):
        nmnist.load(data_dir=tmp_path)


def test_nmnist_conv_recipe_trains_one_epoch_from_the_cli(tmp_path):
    """configs/nmnist_conv.yaml end to end through ``spikeforge train --data-dir``."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    rng = np.random.default_rng(0)
    for split, n in (("Train", 2), ("Test", 1)):
        for digit in range(10):
            folder = tmp_path / "nmnist" / split / str(digit)
            folder.mkdir(parents=True)
            for k in range(n):
                e = 60
                ev = make_events(rng.integers(0, 34, e), rng.integers(0, 34, e),
                                 np.sort(rng.integers(0, 300_000, e)), rng.integers(0, 2, e))
                (folder / f"{k:05d}.bin").write_bytes(nmnist.encode_nmnist(ev))
    recipe = Path(__file__).parents[1] / "configs" / "nmnist_conv.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "spikeforge.cli", "train", "--config", str(recipe),
         "--data-dir", str(tmp_path / "nmnist"), "--epochs", "1", "--out",
         str(tmp_path / "run"), "--set", "train.batch_size=10", "--set", "train.threads=1",
         "--set", "data.val_fraction=0.5",
         "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["epochs"] == 1 and 0.0 <= result["test_accuracy"] <= 1.0
