"""DVS Gesture AEDAT 3.1 reader and folder loader on files written in the real layout."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from spikeforge.data import aedat
from spikeforge.data.event_arrays import make_events
from spikeforge.errors import SpikeforgeError

HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"


def packet(etype: int, events: list[tuple[int, int, int, int, int]], overflow: int = 0) -> bytes:
    """One packet of (x, y, p, valid, timestamp) polarity events, packed field by field."""
    head = struct.pack("<hhiiiiii", etype, 1, 8, 4, overflow, len(events), len(events),
                       len(events))
    body = b"".join(struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | v, t)
                    for x, y, p, v, t in events)
    return head + body


def test_decode_bit_layout_overflow_and_invalid():
    raw = HEADER + packet(1, [(127, 3, 1, 1, 10), (5, 100, 0, 0, 11)]) \
        + packet(2, [(0, 0, 0, 1, 0)]) + packet(1, [(1, 2, 0, 1, 7)], overflow=1)
    ev = aedat.decode_aedat31(raw)
    assert ev["x"].tolist() == [127, 1] and ev["y"].tolist() == [3, 2]
    assert ev["p"].tolist() == [1, 0] and ev["t"].tolist() == [10, 7 + 2**31]


def test_truncated_and_bad_header():
    raw = HEADER + packet(1, [(1, 1, 1, 1, 5), (2, 2, 0, 1, 6)])
    with pytest.raises(SpikeforgeError, match="truncated"):
        aedat.decode_aedat31(raw[:-3])
    with pytest.raises(SpikeforgeError, match="truncated"):
        aedat.decode_aedat31(raw + b"\x01\x00")
    with pytest.raises(SpikeforgeError, match="AER-DAT3"):
        aedat.decode_aedat31(b"#!AER-DAT2.0\r\n" + raw[len(HEADER):])


def test_encode_round_trip():
    ev = make_events([0, 127], [9, 64], [3, 4000], [1, 0])
    assert aedat.decode_aedat31(aedat.encode_aedat31(ev)).tolist() == ev.tolist()


def write_folder(root) -> None:
    names = {"train": ["user01_led.aedat", "user02_led.aedat", "user03_led.aedat"],
             "test": ["user24_fluorescent.aedat"]}
    for split, files in names.items():
        (root / f"trials_to_{split}.txt").write_text("\n".join(files) + "\n")
        for name in files:
            ev = make_events([8, 16, 120, 4], [0, 4, 127, 4],
                             [1000, 2500, 3000, 5200], [1, 0, 1, 1])
            (root / name).write_bytes(aedat.encode_aedat31(ev))
            (root / name.replace(".aedat", "_labels.csv")).write_text(
                "class,startTime_usec,endTime_usec\n2,0,3000\n11,3000,6000\n")


def test_load_folder_keeps_subjects_and_segments(tmp_path):
    write_folder(tmp_path)
    s = aedat.load(dt=1.0, data_dir=tmp_path, max_time_ms=4.0, downsample=4, val_fraction=0.3)
    assert s.train.speakers.tolist() == [1, 1, 2, 2]
    assert s.val.speakers.tolist() == [3, 3] and s.test.speakers.tolist() == [24, 24]
    assert s.test.labels.tolist() == [1, 10] and s.test.n_inputs == 2 * 32 * 32
    (steps, units), label = s.test[0]
    # events at 1.0 ms (x=8,y=0,ON) and 2.5 ms (x=16,y=4,OFF) -> pooled units
    assert label == 1 and steps.tolist() == [1, 2]
    assert units.tolist() == [32 * 32 + 0 * 32 + 2, 1 * 32 + 4]
    (steps, units), label = s.test[1]
    # second segment re-based: 3000 -> 0 ms, 5200 -> 2.2 ms
    assert label == 10 and steps.tolist() == [0, 2]
    assert units.tolist() == [32 * 32 + 31 * 32 + 30, 32 * 32 + 1 * 32 + 1]
    assert np.intersect1d(s.train.speakers, s.val.speakers).size == 0


def test_missing_list_says_where(tmp_path):
    with pytest.raises(SpikeforgeError, match="trials_to_train"):
        aedat.load(data_dir=tmp_path)


def test_registry_name_reads_the_folder(tmp_path):
    from spikeforge.data import load

    write_folder(tmp_path)
    s = load("dvsgesture", data_dir=tmp_path, dt=1.0, max_time_ms=4.0)
    assert s.name == "dvsgesture" and len(s.test) == 2 and s.test.n_inputs == 2 * 32 * 32


def test_subject_split_from_file_names_without_lists(tmp_path):
    """No trials_to_*.txt: users 1-23 train, 24-29 test (the official split), by name."""
    aedat.write_synthetic_gestures(tmp_path, [2, 23, 24, 29], seed=1, n_events=40)
    (tmp_path / "notes.aedat").write_bytes(b"")  # not a userNN file: ignored
    s = aedat.load(dt=5.0, data_dir=tmp_path, max_time_ms=500.0, val_fraction=0.1)
    assert set(s.train.speakers) == {2} and set(s.val.speakers) == {23}
    assert set(s.test.speakers) == {24, 29} and len(s.test) == 22
    assert s.test.labels.tolist() == list(range(11)) * 2
    assert aedat.trial_names(tmp_path, "test", "subjects") == ["user24_led.aedat",
                                                               "user29_led.aedat"]
    with pytest.raises(SpikeforgeError, match="trials_to_train.txt not found"):
        aedat.load(data_dir=tmp_path, split="lists")
    # with lists the lists decide; write_lists follows the subject split
    aedat.write_synthetic_gestures(tmp_path, [2, 23, 24, 29], seed=1, n_events=40,
                                   write_lists=True)
    assert (tmp_path / "trials_to_test.txt").read_text().split() == ["user24_led.aedat",
                                                                     "user29_led.aedat"]


def test_random_validation_split_is_stratified(tmp_path):
    aedat.write_synthetic_gestures(tmp_path, [1, 2, 24], seed=2, n_events=40)
    s = aedat.load(dt=5.0, data_dir=tmp_path, max_time_ms=500.0, val_split="random",
                   val_fraction=0.5)
    assert len(s.val) == 11 and sorted(s.val.labels.tolist()) == list(range(11))
    assert set(s.train.speakers) | set(s.val.speakers) == {1, 2}
    with pytest.raises(SpikeforgeError, match="val_split 'subject'"):
        aedat.load(data_dir=tmp_path, val_split="subject")


def test_file_names_without_subject_are_an_error(tmp_path):
    (tmp_path / "trials_to_train.txt").write_text("gesture.aedat\n")
    (tmp_path / "trials_to_test.txt").write_text("gesture.aedat\n")
    ev = make_events([1], [1], [10], [1])
    (tmp_path / "gesture.aedat").write_bytes(aedat.encode_aedat31(ev))
    (tmp_path / "gesture_labels.csv").write_text("class,startTime_usec,endTime_usec\n1,0,20\n")
    with pytest.raises(SpikeforgeError, match="userNN_<lighting>.aedat"):
        aedat.load(data_dir=tmp_path)


def test_synthetic_gestures_are_not_told_apart_by_event_count():
    rng = np.random.default_rng(0)
    samples = [aedat.synthetic_gesture_events(c, rng) for c in range(11)]
    assert {len(e) for e in samples} == {1500}
    centre_x = [e["x"][len(e) // 2:].mean() - e["x"][: len(e) // 2].mean() for e in samples]
    assert centre_x[0] > 10 and abs(centre_x[3]) < centre_x[0] and centre_x[5] < -10  # motion


def test_dvsgesture_conv_recipe_builds_and_fires_on_an_aedat_folder(tmp_path):
    """configs/dvsgesture_conv.yaml on a synthetic AEDAT 3.1 folder: the network it
    describes reads the 2 x 32 x 32 input and every layer fires (none silent)."""
    from pathlib import Path

    import torch

    from spikeforge.experiments.config import load_config
    from spikeforge.experiments.loading import load_splits, run_network

    aedat.write_synthetic_gestures(tmp_path, [1, 2, 24], seed=0, n_events=1500)
    recipe = Path(__file__).parents[1] / "configs" / "dvsgesture_conv.yaml"
    config = load_config(recipe, {"data.data_dir": str(tmp_path), "data.max_time_ms": 600.0,
                                  "train.threads": 1})
    splits = load_splits(config)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (11, 11, 11)
    assert set(splits.test.speakers) == {24} and splits.train.n_inputs == 2 * 32 * 32
    network = run_network(config, splits, "cpu")
    x, _ = splits.train.collate([splits.train[i] for i in range(4)])
    with torch.no_grad():
        out = network(x)
    assert tuple(out.shape) == (4, 120, 11)
    sizes = [8 * 32 * 32, 16 * 16 * 16, 128]
    for size, record in zip(sizes, network.spike_records(), strict=True):
        rate_hz = record.events.n_events / (4 * size * 0.6)
        assert 0.05 < rate_hz < 100.0, (size, rate_hz)


@pytest.mark.slow
def test_dvsgesture_conv_recipe_trains_one_epoch_from_the_cli(tmp_path):
    """configs/dvsgesture_conv.yaml end to end through ``spikeforge train --data-dir`` on
    an AEDAT 3.1 folder with label CSVs (subject split from the file names)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    aedat.write_synthetic_gestures(tmp_path / "dvs", [1, 2, 24], seed=0, n_events=1500)
    recipe = Path(__file__).parents[1] / "configs" / "dvsgesture_conv.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "spikeforge.cli", "train", "--config", str(recipe),
         "--data-dir", str(tmp_path / "dvs"), "--epochs", "1", "--out", str(tmp_path / "run"),
         "--set", "train.batch_size=11", "--set", "train.threads=1",
         "--set", "data.max_time_ms=600", "--json"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["epochs"] == 1 and 0.0 <= result["test_accuracy"] <= 1.0
    assert result["hidden_rate_hz"] > 0.1  # the conv and dense layers are not silent
    assert set(result["per_speaker_accuracy"]) == {"24"}  # test subject only
