"""N-MNIST (Orchard et al. 2015) in its original binary format.

Each recording is one ``.bin`` file of 5-byte (40-bit) big-endian records:

    byte 0        x (0..33)
    byte 1        y (0..33); y == 240 marks a time-stamp overflow record
    byte 2 bit 7  polarity (1 ON, 0 OFF)
    bits 22..0    time stamp in µs (byte 2 bits 6..0, byte 3, byte 4)

An overflow record adds 2**13 µs to the time stamps of all following records (as the
dataset's own reader and tonic's ``read_mnist_file`` do). The folder layout is
``ROOT/Train/<digit>/*.bin`` and ``ROOT/Test/<digit>/*.bin`` (34x34 sensor, 2 polarities,
10 classes; 60,000 / 10,000 recordings of about 300 ms).

:func:`load` lists the files only (labels from the folder names) and reads each recording
when its sample is indexed, so memory is O(files), never O(frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.data.base import DatasetSplits, stratified_split
from spikeforge.data.download import Limits, TreeArchive, default_cache_dir, ensure_tree
from spikeforge.data.event_arrays import make_events
from spikeforge.data.event_binning import EventBinner, event_dataset, file_samples
from spikeforge.errors import SpikeforgeError

SENSOR_SIZE = (34, 34, 2)
"""(width, height, polarities)."""
OVERFLOW_Y = 240
OVERFLOW_US = 2**13

_MENDELEY = "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
ARCHIVES = (
    TreeArchive(_MENDELEY + "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
                "nmnist_train.zip", "20959b8e626244a1b502305a9e6e2031", "md5", "Train"),
    TreeArchive(_MENDELEY + "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
                "nmnist_test.zip", "69ca8762b2fe404d9b9bad1103e97832", "md5", "Test"),
)
"""The N-MNIST release on Mendeley Data (dataset 468j46mzdv, Orchard et al.), with the MD5
sums tonic pins for it (tonic/datasets/nmnist.py); only MD5 is published, so that is what
a download is checked against."""


def decode_nmnist(raw: bytes | np.ndarray, where: str = "N-MNIST data") -> np.ndarray:
    """Structured event array (x, y, t µs, p) from the bytes of one N-MNIST file."""
    data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes) else raw
    if data.size % 5:
        raise SpikeforgeError(f"{where}: {data.size} bytes is not a whole number of 5-byte "
                              f"N-MNIST records (truncated file?)")
    rec = data.reshape(-1, 5).astype(np.int64)
    x, y = rec[:, 0], rec[:, 1]
    p = rec[:, 2] >> 7
    t = ((rec[:, 2] & 127) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    overflow = y == OVERFLOW_Y
    t = t + OVERFLOW_US * np.cumsum(overflow)
    keep = ~overflow
    events = make_events(x[keep], y[keep], t[keep], p[keep])
    w, h, _ = SENSOR_SIZE
    out = (events["x"] >= w) | (events["y"] >= h)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise SpikeforgeError(f"{where}: event {i} at (x={int(events['x'][i])}, "
                              f"y={int(events['y'][i])}) is outside the 34x34 sensor")
    return events


def encode_nmnist(events: np.ndarray) -> bytes:
    """Bytes of an N-MNIST file holding ``events`` (t < 2**23 µs; no overflow records)."""
    t = events["t"].astype(np.int64)
    if (t >= 2**23).any() or (t < 0).any():
        raise SpikeforgeError("N-MNIST time stamps must lie in [0, 2**23) µs")
    rec = np.empty((len(events), 5), dtype=np.uint8)
    rec[:, 0], rec[:, 1] = events["x"], events["y"]
    rec[:, 2] = ((events["p"].astype(np.int64) & 1) << 7) | (t >> 16)
    rec[:, 3], rec[:, 4] = (t >> 8) & 255, t & 255
    return rec.tobytes()


def read_nmnist(path: Path | str) -> np.ndarray:
    """Structured event array of one N-MNIST ``.bin`` file."""
    return decode_nmnist(Path(path).read_bytes(), where=str(path))


def list_split(root: Path, split: str) -> tuple[list[Path], np.ndarray]:
    """(files, labels int64) of ``root/<split>/<digit>/*.bin``."""
    folder = root / split
    if not folder.is_dir():
        raise SpikeforgeError(
            f"N-MNIST folder {folder} not found; put the extracted dataset "
            f"(Train/0..9/*.bin and Test/0..9/*.bin from the N-MNIST release) under "
            f"{root} and pass it as --data-dir (or leave out --data-dir to download the "
            f"release into the cache)")
    files: list[Path] = []
    labels: list[int] = []
    for digit in range(10):
        found = sorted((folder / str(digit)).glob("*.bin"))
        files += found
        labels += [digit] * len(found)
    if not files:
        raise SpikeforgeError(f"no N-MNIST .bin files in {folder}/0..9")
    return files, np.asarray(labels, dtype=np.int64)


def ensure_nmnist(folder: Path | str | None = None, download: bool = True,
                  limits: Limits | None = None) -> Path:
    """The N-MNIST folder (``Train/``, ``Test/``): ``folder`` (default: ``nmnist`` in the
    download cache), with the two release archives downloaded over HTTPS, checked against
    their pinned MD5 and unpacked where a split is missing (``download``)."""
    folder = Path(folder) if folder is not None else default_cache_dir() / "nmnist"
    return ensure_tree(folder, ARCHIVES, download, "N-MNIST", limits)


def load(dt: float = 1.0, data_dir: Path | str | None = None, max_time_ms: float = 300.0,
         downsample: int = 1, refractory_ms: float = 0.0, val_fraction: float = 0.1,
         seed: int = 0, download: bool = True, **_: object) -> DatasetSplits:
    """N-MNIST splits binned at ``dt`` ms over ``max_time_ms`` with [2, 34, 34] / ``downsample``
    input units; the validation set is a stratified ``val_fraction`` of Train.

    ``data_dir`` is a folder holding ``Train/0..9/*.bin`` and ``Test/0..9/*.bin``; without
    it the release is read from the download cache (:func:`ensure_nmnist`, downloaded once
    when ``download``)."""
    root = ensure_nmnist(None, download) if data_dir is None else Path(data_dir)
    binner = EventBinner(SENSOR_SIZE, dt, max_time_ms, downsample, refractory_ms)
    train_files, train_labels = list_split(root, "Train")
    test_files, test_labels = list_split(root, "Test")
    train = event_dataset(file_samples(train_files, read_nmnist, binner), train_labels, 10)
    test = event_dataset(file_samples(test_files, read_nmnist, binner), test_labels, 10)
    tr, va, _te = stratified_split(train_labels, (val_fraction, 0.0), seed)
    return DatasetSplits("nmnist", train.subset(tr), train.subset(va), test)


# -- a synthetic N-MNIST-format task ---------------------------------------------------
_SHAPES = (
    ["#######"],                                              # horizontal bar
    ["#"] * 7,                                                # vertical bar
    ["#######", "#.....#", "#.....#", "#.....#", "#.....#", "#.....#", "#######"],  # ring
    ["...#...", "...#...", "...#...", "#######", "...#...", "...#...", "...#..."],  # plus
    ["#......", ".#.....", "..#....", "...#...", "....#..", ".....#.", "......#"],  # diagonal
)
_DIRECTIONS = ((1.0, 0.0), (0.0, 1.0))
"""(dx, dy) unit motion: rightwards, downwards."""


def _shape_mask(rows: list[str]) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in rows], dtype=bool)


def moving_pattern_events(label: int, rng: np.random.Generator, n_events: int = 600,
                          noise: float = 0.1, duration_ms: float = 300.0,
                          jitter: float = 3.0) -> np.ndarray:
    """Structured events [n_events] of one synthetic recording of class ``label`` (0..9).

    The class is a (shape, direction) pair: one of five 7-pixel-wide shapes (horizontal
    bar, vertical bar, ring, plus, diagonal; ``label % 5``) moving rightwards or downwards
    (``label // 5``) at a random speed of 0.04-0.07 px/ms for ``duration_ms`` ms, along a
    path centred on the 34x34 sensor (as N-MNIST's digits are) with its start shifted by
    up to ``jitter`` px in x and y. Events are what a DVS sees: ON at the shape's leading
    edges, OFF at its trailing edges, at uniformly random times; a share ``noise`` of
    them is uniform background noise. Every recording has exactly ``n_events`` events, so
    the event count says nothing about the class; neither shape nor direction alone does
    either (each shape moves both ways, each way carries five shapes).
    """
    if not 0 <= label < 10:
        raise SpikeforgeError(f"moving-pattern label {label} outside 0..9")
    mask = _shape_mask(_SHAPES[label % 5])
    dx, dy = _DIRECTIONS[label // 5]
    # leading edge: shape pixels whose neighbour ahead is empty; trailing: behind is empty
    padded = np.pad(mask, 1)
    rows, cols = mask.shape
    ix, iy = int(dx), int(dy)
    ahead = padded[1 + iy:1 + iy + rows, 1 + ix:1 + ix + cols]
    behind = padded[1 - iy:1 - iy + rows, 1 - ix:1 - ix + cols]
    lead = np.argwhere(mask & ~ahead)     # (row, col) pairs
    trail = np.argwhere(mask & ~behind)
    w, h, _ = SENSOR_SIZE
    speed = rng.uniform(0.04, 0.07)        # px / ms
    travel = speed * duration_ms
    x0 = (w - cols - (travel if dx else 0.0)) / 2 + rng.uniform(-jitter, jitter)
    y0 = (h - rows - (travel if dy else 0.0)) / 2 + rng.uniform(-jitter, jitter)
    n_noise = int(round(noise * n_events))
    n_sig = n_events - n_noise
    t = np.sort(rng.uniform(0.0, duration_ms, n_sig))
    on = rng.random(n_sig) < 0.5
    pick_lead = lead[rng.integers(0, len(lead), n_sig)]
    pick_trail = trail[rng.integers(0, len(trail), n_sig)]
    rc = np.where(on[:, None], pick_lead, pick_trail)
    # leading edge one pixel ahead of the shape (turning on), trailing edge on the pixel
    # being left (turning off)
    step = np.where(on, 1.0, 0.0)
    xs = np.floor(x0 + rc[:, 1] + dx * (speed * t + step)).astype(np.int64)
    ys = np.floor(y0 + rc[:, 0] + dy * (speed * t + step)).astype(np.int64)
    xs, ys = np.clip(xs, 0, w - 1), np.clip(ys, 0, h - 1)
    tn = rng.uniform(0.0, duration_ms, n_noise)
    x = np.concatenate([xs, rng.integers(0, w, n_noise)])
    y = np.concatenate([ys, rng.integers(0, h, n_noise)])
    p = np.concatenate([on.astype(np.int64), rng.integers(0, 2, n_noise)])
    times = np.concatenate([t, tn])
    order = np.argsort(times, kind="stable")
    return make_events(x[order], y[order], np.round(times[order] * 1000).astype(np.int64),
                       p[order])


def write_moving_patterns(root: Path | str, train_per_class: int, test_per_class: int,
                          seed: int = 0, n_events: int = 600) -> Path:
    """Write a synthetic N-MNIST-format folder ``root/Train|Test/<0..9>/<k>.bin`` of
    :func:`moving_pattern_events` recordings (``train_per_class`` / ``test_per_class``
    files per class); returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("Train", train_per_class), ("Test", test_per_class)):
        for label in range(10):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                events = moving_pattern_events(label, rng, n_events)
                (folder / f"{k:05d}.bin").write_bytes(encode_nmnist(events))
    return root
