"""Camera event arrays: the tonic-style structured ``(x, y, t, p)`` layout and a file reader.

An event array is a NumPy structured array of length E with fields

    x  int16  column, 0 <= x < width
    y  int16  row,    0 <= y < height
    t  int64  time stamp in microseconds (non-decreasing within a recording)
    p  int8   polarity, 0 (OFF) or 1 (ON)

(the dtype ``tonic`` uses, so its arrays are read without copying field by field).
:func:`read_event_array` reads such an array from a ``.npy`` file (structured) or an HDF5
file (datasets ``x, y, t, p`` at the root or under ``events/``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.errors import SpikeforgeError

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])
"""Structured dtype of one camera event (t in microseconds)."""

FIELDS = ("x", "y", "t", "p")


def make_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Structured event array [E] (:data:`EVENT_DTYPE`) from four equal-length arrays."""
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


def check_events(events: np.ndarray, sensor_size: tuple[int, int, int] | None = None,
                 where: str = "events") -> np.ndarray:
    """``events`` if it has ``x, y, t, p`` fields and valid polarities (and coordinates
    inside ``sensor_size = (width, height, polarities)``), else :class:`SpikeforgeError`."""
    names = events.dtype.names or ()
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise SpikeforgeError(f"{where}: event array lacks field(s) {', '.join(missing)} "
                              f"(has {', '.join(names) or 'none'}); expected x, y, t, p")
    n_pol = 2 if sensor_size is None else int(sensor_size[2])
    bad = (events["p"] < 0) | (events["p"] >= max(n_pol, 1))
    if bad.any():
        raise SpikeforgeError(f"{where}: polarity {int(events['p'][bad][0])} at event "
                              f"{int(np.flatnonzero(bad)[0])}; polarities must be 0..{n_pol - 1}")
    if sensor_size is not None:
        w, h = int(sensor_size[0]), int(sensor_size[1])
        out = (events["x"] < 0) | (events["x"] >= w) | (events["y"] < 0) | (events["y"] >= h)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise SpikeforgeError(f"{where}: event {i} at (x={int(events['x'][i])}, "
                                  f"y={int(events['y'][i])}) is outside the {w}x{h} sensor")
    return events


def read_event_array(path: Path | str) -> np.ndarray:
    """Structured event array [E] from a ``.npy`` (structured) or HDF5 (``.h5``/``.hdf5``)
    file with fields/datasets ``x, y, t`` (µs) and ``p``."""
    path = Path(path)
    if not path.is_file():
        raise SpikeforgeError(f"event file {path} does not exist")
    if path.suffix == ".npy":
        try:
            events = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise SpikeforgeError(f"{path}: not a readable .npy event array ({err})") from err
        return check_events(events, where=str(path))
    if path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            group = f.get("events", f)
            missing = [k for k in FIELDS if k not in group]
            if missing:
                raise SpikeforgeError(f"{path}: HDF5 event file lacks dataset(s) "
                                      f"{', '.join(missing)}; expected x, y, t, p")
            columns = [np.asarray(group[k]) for k in FIELDS]
        if len({c.shape for c in columns}) != 1:
            raise SpikeforgeError(f"{path}: datasets x, y, t, p differ in length")
        return check_events(make_events(*columns), where=str(path))
    raise SpikeforgeError(f"{path}: unknown event file type {path.suffix!r} (.npy, .h5, .hdf5)")
