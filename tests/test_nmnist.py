"""N-MNIST binary reader and folder loader on files written in the dataset's format."""

from __future__ import annotations

import numpy as np
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


def test_moving_patterns_have_equal_counts_and_distinct_motion():
    rng = np.random.default_rng(0)
    samples = [[nmnist.moving_pattern_events(c, rng) for _ in range(5)] for c in range(10)]
    assert {len(e) for row in samples for e in row} == {600}  # raw count: no class cue
    for c in range(10):
        for e in samples[c]:
            assert e["x"].max() < 34 and e["y"].max() < 34 and np.all(np.diff(e["t"]) >= 0)
        on = np.mean([e["p"].mean() for e in samples[c]])
        assert 0.4 < on < 0.6  # polarity balance: no class cue either
        # the pattern moves right (classes 0-4) or down (5-9) by 12-21 px over 300 ms
        first = np.mean([[e["x"][:100].mean(), e["y"][:100].mean()] for e in samples[c]], 0)
        last = np.mean([[e["x"][-100:].mean(), e["y"][-100:].mean()] for e in samples[c]], 0)
        moved = last - first
        assert (moved[0] > 8 and abs(moved[1]) < 3) if c < 5 else \
            (moved[1] > 8 and abs(moved[0]) < 3), (c, moved)
    with pytest.raises(SpikeforgeError, match="outside 0..9"):
        nmnist.moving_pattern_events(10, rng)


def test_binned_event_count_alone_does_not_classify(tmp_path):
    """Nearest class mean of the binned spike count (and ON count): far below the conv
    network (0.29 on the 60-per-class folder; here a smaller one)."""
    nmnist.write_moving_patterns(tmp_path, 20, 10, seed=3)
    s = nmnist.load(dt=2.0, data_dir=tmp_path, val_fraction=0.1)

    def counts(ds):
        rows = [(len(st), int((u >= 34 * 34).sum()), y) for (st, u), y in
                (ds[i] for i in range(len(ds)))]
        return np.array(rows, dtype=float)

    train, test = counts(s.train), counts(s.test)
    means = np.array([train[train[:, 2] == c, :2].mean(0) for c in range(10)])
    scale = train[:, :2].std(0)
    pred = np.argmin((((test[:, None, :2] - means[None]) / scale) ** 2).sum(-1), 1)
    accuracy = float(np.mean(pred == test[:, 2]))
    assert 0.1 <= accuracy < 0.45


def test_nmnist_conv_recipe_trains_one_epoch_from_the_cli(tmp_path):
    """configs/nmnist_conv.yaml end to end through ``spikeforge train --data-dir`` on a
    tiny moving-pattern folder; every layer fires (none silent, none saturated)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    nmnist.write_moving_patterns(tmp_path / "nmnist", 2, 1, seed=0)
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
    assert 0.2 < result["hidden_rate_hz"] < 50.0
