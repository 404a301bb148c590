"""DVS Gesture (Amir et al. 2017) in its original AEDAT 3.1 files with the label CSVs.

AEDAT 3.1 file: ASCII header lines starting with ``#`` (the first ``#!AER-DAT3.1``, the
last ``#!END-HEADER``, each ending in CR LF), then packets, each a 28-byte little-endian
header

    int16 eventType  int16 eventSource  int32 eventSize  int32 eventTSOffset
    int32 eventTSOverflow  int32 eventCapacity  int32 eventNumber  int32 eventValid

followed by ``eventCapacity * eventSize`` bytes. Polarity packets (eventType 1,
eventSize 8) hold events ``uint32 data, int32 timestamp`` with data bit 0 = valid,
bit 1 = polarity, bits 2..16 = y, bits 17..31 = x; the time stamp in µs is
``timestamp | eventTSOverflow << 31``. Other packet types are skipped; invalid events
are dropped.

DVS Gesture layout in one folder: ``userNN_<lighting>.aedat`` with
``userNN_<lighting>_labels.csv`` (``class,startTime_usec,endTime_usec``, classes 1..11)
and ``trials_to_train.txt`` / ``trials_to_test.txt`` listing the ``.aedat`` names. Each
CSV row is one sample: the events in [start, end), times re-based to start. Subject
``NN`` is kept per sample (``speakers`` of the dataset) for subject-disjoint splits.
"""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import numpy as np

from spikeforge.data.base import DatasetSplits
from spikeforge.data.event_arrays import make_events
from spikeforge.data.event_binning import EventBinner, EventSamples, event_dataset
from spikeforge.errors import SpikeforgeError

SENSOR_SIZE = (128, 128, 2)
"""(width, height, polarities)."""
POLARITY_EVENT = 1
PACKET_HEADER = struct.Struct("<hhiiiiii")
END_HEADER = b"#!END-HEADER"


def data_start(raw: bytes, where: str = "AEDAT data") -> int:
    """Offset of the first packet after the AEDAT 3.1 header."""
    if not raw.startswith(b"#!AER-DAT3"):
        raise SpikeforgeError(f"{where}: not an AEDAT 3.x file (no #!AER-DAT3 first line)")
    end = raw.find(END_HEADER)
    if end < 0:
        raise SpikeforgeError(f"{where}: AEDAT header has no #!END-HEADER line (truncated?)")
    return raw.index(b"\n", end) + 1


def decode_aedat31(raw: bytes, where: str = "AEDAT data") -> np.ndarray:
    """Structured (x, y, t µs, p) array of the valid polarity events in an AEDAT 3.1 file."""
    pos = data_start(raw, where)
    chunks: list[np.ndarray] = []
    while pos < len(raw):
        if pos + PACKET_HEADER.size > len(raw):
            raise SpikeforgeError(f"{where}: packet header at byte {pos} is cut off "
                                  f"(truncated file)")
        etype, _src, size, _off, overflow, capacity, _n, _valid = PACKET_HEADER.unpack_from(
            raw, pos)
        pos += PACKET_HEADER.size
        body = size * capacity
        if size <= 0 or capacity < 0 or pos + body > len(raw):
            raise SpikeforgeError(f"{where}: packet at byte {pos - PACKET_HEADER.size} "
                                  f"declares {capacity} events of {size} bytes but the file "
                                  f"ends first (truncated file)")
        if etype == POLARITY_EVENT:
            if size != 8:
                raise SpikeforgeError(f"{where}: polarity events of {size} bytes (expected 8)")
            rec = np.frombuffer(raw, dtype="<u4", count=2 * capacity, offset=pos)
            data, ts = rec[0::2].astype(np.int64), rec[1::2].astype(np.int64)
            ok = (data & 1) == 1
            data = data[ok]
            chunks.append(make_events((data >> 17) & 0x7FFF, (data >> 2) & 0x7FFF,
                                      ts[ok] | (int(overflow) << 31), (data >> 1) & 1))
        pos += body
    if not chunks:
        return make_events([], [], [], [])
    return np.concatenate(chunks)


def encode_aedat31(events: np.ndarray, valid: np.ndarray | None = None) -> bytes:
    """Bytes of an AEDAT 3.1 file with one polarity packet holding ``events``."""
    n = len(events)
    valid = np.ones(n, dtype=np.int64) if valid is None else valid.astype(np.int64)
    data = ((events["x"].astype(np.int64) << 17) | (events["y"].astype(np.int64) << 2)
            | (events["p"].astype(np.int64) << 1) | valid)
    rec = np.empty(2 * n, dtype="<u4")
    rec[0::2], rec[1::2] = data, events["t"].astype(np.int64) & 0x7FFFFFFF
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#!END-HEADER\r\n"
    packet = PACKET_HEADER.pack(POLARITY_EVENT, 1, 8, 4, 0, n, n, int(valid.sum()))
    return header + packet + rec.tobytes()


def read_aedat31(path: Path | str) -> np.ndarray:
    """Polarity events of one AEDAT 3.1 file."""
    return decode_aedat31(Path(path).read_bytes(), where=str(path))


def read_labels(path: Path) -> list[tuple[int, int, int]]:
    """(class 0..10, start µs, end µs) rows of a DVS Gesture ``*_labels.csv``."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            cls = int(row["class"])
            if not 1 <= cls <= 11:
                raise SpikeforgeError(f"{path}: class {cls} outside 1..11")
            rows.append((cls - 1, int(row["startTime_usec"]), int(row["endTime_usec"])))
    return rows


class SegmentReader:
    """Callable ``i -> events of segment i`` (re-based to its start); keeps the last file."""

    def __init__(self, segments: list[tuple[Path, int, int]]) -> None:
        self.segments = segments
        self._path: Path | None = None
        self._events: np.ndarray | None = None

    def __call__(self, i: int) -> np.ndarray:
        path, start, end = self.segments[i]
        if path != self._path:
            self._path, self._events = path, read_aedat31(path)
        ev = self._events
        assert ev is not None
        out = ev[(ev["t"] >= start) & (ev["t"] < end)].copy()
        out["t"] -= start
        return out

    def __getstate__(self) -> dict:
        return {"segments": self.segments, "_path": None, "_events": None}


def list_trials(root: Path, split: str) -> tuple[list[tuple[Path, int, int]], list[int], list[int]]:
    """(segments, labels, subjects) of the trials named in ``trials_to_<split>.txt``."""
    listing = root / f"trials_to_{split}.txt"
    if not listing.is_file():
        raise SpikeforgeError(
            f"DVS Gesture list {listing} not found; put the extracted DvsGesture folder "
            f"(userNN_*.aedat, userNN_*_labels.csv, trials_to_train.txt, "
            f"trials_to_test.txt) at {root} and pass it as --data-dir")
    segments, labels, subjects = [], [], []
    for name in listing.read_text().split():
        aedat = root / name
        labels_csv = root / (aedat.stem + "_labels.csv")
        if not aedat.is_file() or not labels_csv.is_file():
            raise SpikeforgeError(f"{listing} names {name} but {aedat} or {labels_csv} "
                                  f"is missing")
        subject = int(name.split("_", 1)[0].removeprefix("user"))
        for cls, start, end in read_labels(labels_csv):
            segments.append((aedat, start, end))
            labels.append(cls)
            subjects.append(subject)
    return segments, labels, subjects


def load(dt: float = 1.0, data_dir: Path | str | None = None, max_time_ms: float = 1500.0,
         downsample: int = 4, refractory_ms: float = 0.0, val_fraction: float = 0.1,
         **_: object) -> DatasetSplits:
    """DVS Gesture splits binned at ``dt`` ms over ``max_time_ms`` with [2, 128, 128] /
    ``downsample`` input units; validation holds out whole training subjects (the last
    ``max(1, round(val_fraction * subjects))`` subject ids)."""
    if data_dir is None:
        raise SpikeforgeError("DVS Gesture is read from a folder: pass --data-dir DIR")
    root = Path(data_dir)
    binner = EventBinner(SENSOR_SIZE, dt, max_time_ms, downsample, refractory_ms)
    parts = {}
    for split in ("train", "test"):
        segments, labels, subjects = list_trials(root, split)
        reader = SegmentReader(segments)
        parts[split] = event_dataset(EventSamples(reader, len(segments), binner),
                                     np.asarray(labels), 11, np.asarray(subjects))
    train = parts["train"]
    assert train.speakers is not None
    ids = np.unique(train.speakers)
    held = ids[len(ids) - max(1, round(val_fraction * len(ids))):] if len(ids) > 1 else ids[:0]
    is_val = np.isin(train.speakers, held)
    return DatasetSplits("dvsgesture", train.subset(np.flatnonzero(~is_val)),
                         train.subset(np.flatnonzero(is_val)), parts["test"])
