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
