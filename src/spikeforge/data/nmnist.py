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
from spikeforge.data.event_arrays import make_events
from spikeforge.data.event_binning import EventBinner, event_dataset, file_samples
from spikeforge.errors import SpikeforgeError

SENSOR_SIZE = (34, 34, 2)
"""(width, height, polarities)."""
OVERFLOW_Y = 240
OVERFLOW_US = 2**13


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
            f"{root} and pass it as --data-dir")
    files: list[Path] = []
    labels: list[int] = []
    for digit in range(10):
        found = sorted((folder / str(digit)).glob("*.bin"))
        files += found
        labels += [digit] * len(found)
    if not files:
        raise SpikeforgeError(f"no N-MNIST .bin files in {folder}/0..9")
    return files, np.asarray(labels, dtype=np.int64)


def load(dt: float = 1.0, data_dir: Path | str | None = None, max_time_ms: float = 300.0,
         downsample: int = 1, refractory_ms: float = 0.0, val_fraction: float = 0.1,
         seed: int = 0, **_: object) -> DatasetSplits:
    """N-MNIST splits binned at ``dt`` ms over ``max_time_ms`` with [2, 34, 34] / ``downsample``
    input units; the validation set is a stratified ``val_fraction`` of Train."""
    if data_dir is None:
        raise SpikeforgeError("N-MNIST is read from a folder: pass --data-dir DIR "
                              "(DIR/Train/0..9/*.bin, DIR/Test/0..9/*.bin)")
    root = Path(data_dir)
    binner = EventBinner(SENSOR_SIZE, dt, max_time_ms, downsample, refractory_ms)
    train_files, train_labels = list_split(root, "Train")
    test_files, test_labels = list_split(root, "Test")
    train = event_dataset(file_samples(train_files, read_nmnist, binner), train_labels, 10)
    test = event_dataset(file_samples(test_files, read_nmnist, binner), test_labels, 10)
    tr, va, _te = stratified_split(train_labels, (val_fraction, 0.0), seed)
    return DatasetSplits("nmnist", train.subset(tr), train.subset(va), test)
