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
and ``trials_to_train.txt`` / ``trials_to_test.txt`` listing the ``.aedat`` names
(without the lists, the recordings are split by subject: users 1-23 train, 24-29 test,
the official subject-disjoint split). Each CSV row is one sample: the events in
[start, end), times re-based to start. Subject ``NN`` is kept per sample (``speakers`` of
the dataset) for subject-disjoint validation and per-subject results.

The same loader reads tonic's release of the dataset (``ibmGestureTrain/`` and
``ibmGestureTest/``, one ``userNN_<lighting>/<class>.npy`` per segment, time in ms),
which is what the download fetches (:data:`ARCHIVES`).
"""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import numpy as np

from spikeforge.data.base import DatasetSplits, SpikeDataset, stratified_split
from spikeforge.data.download import Limits, TreeArchive, default_cache_dir, ensure_tree
from spikeforge.data.event_arrays import make_events
from spikeforge.data.event_binning import EventBinner, EventSamples, event_dataset, file_samples
from spikeforge.errors import SpikeforgeError

SENSOR_SIZE = (128, 128, 2)
"""(width, height, polarities)."""
POLARITY_EVENT = 1
PACKET_HEADER = struct.Struct("<hhiiiiii")
END_HEADER = b"#!END-HEADER"

NPY_FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
"""Folders of the tonic release (one ``userNN_<lighting>/<class>.npy`` per sample)."""
ARCHIVES = (
    TreeArchive("https://figshare.com/ndownloader/files/38022171", "ibmGestureTrain.tar.gz",
                "3a8f0d4120a166bac7591f77409cb105", "md5", "ibmGestureTrain"),
    TreeArchive("https://figshare.com/ndownloader/files/38020584", "ibmGestureTest.tar.gz",
                "56070e45dadaa85fff82e0fbfbc06de5", "md5", "ibmGestureTest"),
)
"""The DVS Gesture recordings as tonic publishes them (figshare, MD5 sums pinned in
tonic/datasets/dvsgesture.py; only MD5 is published): already cut into one ``.npy`` per
labelled segment, time stamps in ms. The original AEDAT 3.1 release (IBM) has no stable
download URL with a published checksum; place it yourself."""


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


TRAIN_SUBJECTS = tuple(range(1, 24))
"""Subjects of the official DVS Gesture training set (user01..user23)."""
TEST_SUBJECTS = tuple(range(24, 30))
"""Subjects of the official test set (user24..user29)."""
SPLITS = ("auto", "lists", "subjects")


def subject_of(name: str) -> int:
    """Subject id NN of a DVS Gesture file name ``userNN_<lighting>.aedat``."""
    head = Path(name).name.split("_", 1)[0]
    digits = head.removeprefix("user")
    if not head.startswith("user") or not digits.isdigit():
        raise SpikeforgeError(f"DVS Gesture file {name} is not named userNN_<lighting>.aedat; "
                              f"the subject id comes from the name")
    return int(digits)


def trial_names(root: Path, split: str, by: str = "auto") -> list[str]:
    """``.aedat`` names of ``split`` ("train" / "test").

    ``by="lists"`` reads ``trials_to_<split>.txt``; ``by="subjects"`` takes every
    ``user*.aedat`` in ``root`` whose subject is in :data:`TRAIN_SUBJECTS` /
    :data:`TEST_SUBJECTS` (the official, subject-disjoint split: users 1-23 train, 24-29
    test); ``"auto"`` uses the lists when both exist, else the subjects.
    """
    if by not in SPLITS:
        raise SpikeforgeError(f"DVS Gesture split {by!r}: choose one of {', '.join(SPLITS)}")
    lists = [root / f"trials_to_{s}.txt" for s in ("train", "test")]
    if by == "lists" or (by == "auto" and all(p.is_file() for p in lists)):
        listing = root / f"trials_to_{split}.txt"
        if not listing.is_file():
            raise SpikeforgeError(
                f"DVS Gesture list {listing} not found; put the extracted DvsGesture folder "
                f"(userNN_*.aedat, userNN_*_labels.csv, trials_to_train.txt, "
                f"trials_to_test.txt) at {root} and pass it as --data-dir")
        return listing.read_text().split()
    found = sorted(p.name for p in root.glob("user*.aedat"))
    if not found:
        raise SpikeforgeError(
            f"no DVS Gesture recordings in {root}: expected userNN_*.aedat with "
            f"userNN_*_labels.csv (and optionally trials_to_train.txt / trials_to_test.txt); "
            f"put the extracted DvsGesture folder there and pass it as --data-dir")
    wanted = TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS
    names = [n for n in found if subject_of(n) in wanted]
    if not names:
        raise SpikeforgeError(f"{root} holds no {split} recordings (subjects "
                              f"{wanted[0]}..{wanted[-1]}: user{wanted[0]:02d}_*.aedat ...)")
    return names


def list_trials(root: Path, split: str, by: str = "auto"
                ) -> tuple[list[tuple[Path, int, int]], list[int], list[int]]:
    """(segments, labels, subjects) of the trials of ``split`` (see :func:`trial_names`)."""
    segments, labels, subjects = [], [], []
    for name in trial_names(root, split, by):
        aedat = root / name
        labels_csv = root / (aedat.stem + "_labels.csv")
        if not aedat.is_file() or not labels_csv.is_file():
            raise SpikeforgeError(f"the {split} split names {name} but {aedat} or "
                                  f"{labels_csv} is missing")
        subject = subject_of(name)
        for cls, start, end in read_labels(labels_csv):
            segments.append((aedat, start, end))
            labels.append(cls)
            subjects.append(subject)
    return segments, labels, subjects


def read_tonic_npy(path: Path | str) -> np.ndarray:
    """Structured events of one tonic DVS Gesture sample: an ``[E, 4]`` array with columns
    x, y, p, t (ms), as in tonic's ``ibmGesture*.tar.gz``."""
    try:
        raw = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SpikeforgeError(f"{path}: not a readable .npy event array ({err})") from err
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise SpikeforgeError(f"{path}: expected an [events, 4] array (x, y, p, t ms), "
                              f"got shape {list(raw.shape)}")
    return make_events(raw[:, 0], raw[:, 1], np.round(raw[:, 3].astype(np.float64) * 1000.0)
                       .astype(np.int64), raw[:, 2])


def list_npy(root: Path, split: str) -> tuple[list[Path], list[int], list[int]]:
    """(files, labels 0..10, subjects) of ``root/ibmGesture<Split>/userNN_*/<class>.npy``."""
    folder = root / NPY_FOLDERS[split]
    files, labels, subjects = [], [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        subject = subject_of(sub.name)
        for f in sorted(sub.glob("*.npy"), key=lambda q: (len(q.stem), q.stem)):
            if not f.stem.isdigit() or not 0 <= int(f.stem) <= 10:
                raise SpikeforgeError(f"{f}: tonic DVS Gesture samples are named 0.npy .. "
                                      f"10.npy (the class)")
            files.append(f)
            labels.append(int(f.stem))
            subjects.append(subject)
    if not files:
        raise SpikeforgeError(f"no DVS Gesture samples in {folder}/userNN_*/<class>.npy")
    return files, labels, subjects


def is_tonic_layout(root: Path) -> bool:
    """Does ``root`` hold tonic's ``ibmGestureTrain/`` and ``ibmGestureTest/`` folders?"""
    return all((root / name).is_dir() for name in NPY_FOLDERS.values())


def ensure_dvsgesture(folder: Path | str | None = None, download: bool = True,
                      limits: Limits | None = None) -> Path:
    """The tonic DVS Gesture folder (``ibmGestureTrain/``, ``ibmGestureTest/``): ``folder``
    (default: ``dvsgesture`` in the download cache), the archives downloaded over HTTPS,
    MD5-checked and unpacked where missing (``download``)."""
    folder = Path(folder) if folder is not None else default_cache_dir() / "dvsgesture"
    return ensure_tree(folder, ARCHIVES, download, "DVS Gesture", limits)


def load(dt: float = 1.0, data_dir: Path | str | None = None, max_time_ms: float = 1500.0,
         downsample: int = 4, refractory_ms: float = 0.0, val_fraction: float = 0.1,
         split: str = "auto", val_split: str = "speaker", seed: int = 0,
         download: bool = True, **_: object) -> DatasetSplits:
    """DVS Gesture splits binned at ``dt`` ms over ``max_time_ms`` with [2, 128, 128] /
    ``downsample`` input units.

    ``data_dir`` holds the AEDAT 3.1 release (``split`` chooses its train / test
    recordings, see :func:`trial_names`: the trial lists, or subjects 1-23 / 24-29 from
    the file names) or tonic's ``ibmGestureTrain/`` and ``ibmGestureTest/`` folders;
    without it the tonic release is read from the download cache
    (:func:`ensure_dvsgesture`, downloaded once when ``download``). Validation
    (``val_split="speaker"``) holds out whole training subjects, the last
    ``max(1, round(val_fraction * subjects))`` ids, so it is subject-disjoint from
    training as the test set is; ``val_split="random"`` holds out a stratified
    ``val_fraction`` of the samples.
    """
    if val_split not in ("speaker", "random"):
        raise SpikeforgeError(f"DVS Gesture val_split {val_split!r}: choose speaker or random")
    root = ensure_dvsgesture(None, download) if data_dir is None else Path(data_dir)
    binner = EventBinner(SENSOR_SIZE, dt, max_time_ms, downsample, refractory_ms)
    parts: dict[str, SpikeDataset] = {}
    tonic_layout = is_tonic_layout(root) and split == "auto"
    for part in ("train", "test"):
        if tonic_layout:
            files, labels, subjects = list_npy(root, part)
            samples = file_samples(files, read_tonic_npy, binner)
        else:
            segments, labels, subjects = list_trials(root, part, split)
            samples = EventSamples(SegmentReader(segments), len(segments), binner)
        parts[part] = event_dataset(samples, np.asarray(labels), 11, np.asarray(subjects))
    train = parts["train"]
    assert train.speakers is not None
    if val_split == "random":
        tr, va, _ = stratified_split(train.labels, (val_fraction, 0.0), seed)
        return DatasetSplits("dvsgesture", train.subset(tr), train.subset(va), parts["test"])
    ids = np.unique(train.speakers)
    held = ids[len(ids) - max(1, round(val_fraction * len(ids))):] if len(ids) > 1 else ids[:0]
    is_val = np.isin(train.speakers, held)
    return DatasetSplits("dvsgesture", train.subset(np.flatnonzero(~is_val)),
                         train.subset(np.flatnonzero(is_val)), parts["test"])


# -- a synthetic DVS-Gesture-format folder ----------------------------------------------
def synthetic_gesture_events(label: int, rng: np.random.Generator, n_events: int = 1500,
                             duration_ms: float = 1500.0) -> np.ndarray:
    """Structured events [n_events] (t µs from 0) of one synthetic gesture of class
    ``label`` (0..10): a 16x16-pixel patch moving from near the centre of the 128x128
    sensor in direction ``2 pi label / 11`` at 0.03-0.05 px/ms, ON events on its leading
    half and OFF on its trailing half, 10 % uniform noise; every sample has exactly
    ``n_events`` events."""
    if not 0 <= label < 11:
        raise SpikeforgeError(f"gesture label {label} outside 0..10")
    w, h, _ = SENSOR_SIZE
    angle = 2 * np.pi * label / 11
    ux, uy = np.cos(angle), np.sin(angle)
    speed = rng.uniform(0.03, 0.05)
    n_noise = n_events // 10
    n_sig = n_events - n_noise
    t = np.sort(rng.uniform(0.0, duration_ms, n_sig))
    ox, oy = rng.uniform(-8, 8, 2)
    px, py = rng.uniform(-8, 8, n_sig), rng.uniform(-8, 8, n_sig)
    on = (px * ux + py * uy) > 0  # leading half of the patch
    x = np.clip(np.floor(w / 2 + ox + px + ux * speed * t), 0, w - 1).astype(np.int64)
    y = np.clip(np.floor(h / 2 + oy + py + uy * speed * t), 0, h - 1).astype(np.int64)
    times = np.concatenate([t, rng.uniform(0.0, duration_ms, n_noise)])
    order = np.argsort(times, kind="stable")
    return make_events(np.concatenate([x, rng.integers(0, w, n_noise)])[order],
                       np.concatenate([y, rng.integers(0, h, n_noise)])[order],
                       np.round(times[order] * 1000).astype(np.int64),
                       np.concatenate([on.astype(np.int64), rng.integers(0, 2, n_noise)])[order])


def write_synthetic_gestures(root: Path | str, subjects: list[int], repeats: int = 1,
                             seed: int = 0, n_events: int = 1500, gap_ms: float = 200.0,
                             write_lists: bool = False) -> Path:
    """Write a DVS-Gesture-format folder: per subject one ``userNN_led.aedat`` (AEDAT 3.1)
    holding ``repeats`` :func:`synthetic_gesture_events` recordings of each of the 11
    classes one after another (``gap_ms`` apart), and its ``userNN_led_labels.csv``
    (classes 1..11, start/end µs). ``write_lists`` also writes ``trials_to_train.txt`` /
    ``trials_to_test.txt`` by the official subject split. Returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for subject in subjects:
        chunks, rows, start = [], ["class,startTime_usec,endTime_usec"], 0
        for _ in range(repeats):
            for label in range(11):
                ev = synthetic_gesture_events(label, rng, n_events)
                length = int(ev["t"].max()) + 1 if len(ev) else 1
                ev["t"] += start
                chunks.append(ev)
                rows.append(f"{label + 1},{start},{start + length}")
                start += length + int(gap_ms * 1000)
        name = f"user{subject:02d}_led.aedat"
        (root / name).write_bytes(encode_aedat31(np.concatenate(chunks)))
        (root / name.replace(".aedat", "_labels.csv")).write_text("\n".join(rows) + "\n")
        names.append(name)
    if write_lists:
        for split, wanted in (("train", TRAIN_SUBJECTS), ("test", TEST_SUBJECTS)):
            chosen = [n for n in names if subject_of(n) in wanted]
            (root / f"trials_to_{split}.txt").write_text("\n".join(chosen) + "\n")
    return root
