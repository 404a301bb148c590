"""Spiking Heidelberg Digits / Spiking Speech Commands (Cramer et al. 2020) from HDF5.

File format (one file per split)::

    spikes/times   vlen float  [N]  event times of each sample, seconds
    spikes/units   vlen int    [N]  channel of each event (0 .. 699)
    labels         int         [N]  class index
    extra/speaker  int         [N]  speaker id (optional)
    extra/keys     str         [C]  class names (optional; defines the class count)

SHD: ``shd_train.h5`` and ``shd_test.h5`` (20 classes). SSC: ``ssc_train.h5``,
``ssc_valid.h5``, ``ssc_test.h5`` (35 classes). Any file with these groups and dtypes
(any number of samples, speakers, classes, channels <= ``n_channels``) loads.

Events stay sparse (:class:`EventStore`, 6 bytes per event) and are binned per batch.
Checks on reading: unreadable/truncated HDF5, missing groups, wrong dtypes, length
mismatches, NaN or negative times, channels >= ``n_channels`` and labels outside the
class list raise a one-line :class:`SpikeforgeError`. Times that are not sorted within a
sample are sorted (a documented repair, logged as a warning with the sample count).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from spikeforge.data.base import DatasetSplits, SpikeDataset, stratified_split
from spikeforge.data.download import default_cache_dir, ensure_file
from spikeforge.data.event_store import EventStore
from spikeforge.data.speakers import speaker_disjoint_split
from spikeforge.errors import SpikeforgeError

log = logging.getLogger("spikeforge.data")

BASE_URL = "https://zenkelab.org/datasets"
PINNED_MD5 = {
    # The authoritative checksums of the published SHD/SSC archives. The dataset authors
    # and tonic (tonic/datasets/hsd.py, tonic 0.4 to 1.7) publish MD5 sums only, so these
    # MD5 values are what a download is checked against; they are pinned here rather than
    # read from the download host. The SHA-256 of each unpacked file is recorded in the
    # folder's SHA256SUMS and re-checked on every use.
    "shd_train.h5.zip": "f3252aeb598ac776c1b526422d90eecb",
    "shd_test.h5.zip": "1503a5064faa34311c398fb0a1ed0a6f",
    "ssc_train.h5.zip": "d102be95e7144fcc0553d1f45ba94170",
    "ssc_valid.h5.zip": "b4eee3516a4a90dd0c71a6ac23a8ae43",
    "ssc_test.h5.zip": "a35ff1e9cffdd02a20eb850c17c37748",
}
SHD_CHANNELS = 700
VARIANTS = {
    "shd": {"files": ("train", "test"), "max_time_ms": 1400.0},
    "ssc": {"files": ("train", "valid", "test"), "max_time_ms": 1000.0},
}
CHUNK = 1024
"""Samples read from the HDF5 file per chunk (bounds the transient memory)."""


@dataclass
class EventFile:
    """Contents of one SHD-format file, events flat (see :class:`EventStore`)."""

    times_ms: np.ndarray  # float32 [E]
    units: np.ndarray  # uint16 [E]
    ptr: np.ndarray  # int64 [N+1]
    labels: np.ndarray  # int64 [N]
    speakers: np.ndarray | None  # int64 [N]
    keys: list[str] | None


def _dataset(handle: h5py.File, name: str, path: Path) -> h5py.Dataset:
    if name not in handle or not isinstance(handle[name], h5py.Dataset):
        raise SpikeforgeError(
            f"{path} is not in the SHD format: it has no dataset '{name}' "
            f"(expected spikes/times, spikes/units, labels)"
        )
    return handle[name]


def _vlen_base(ds: h5py.Dataset, kind: str, path: Path) -> np.dtype:
    base = h5py.check_vlen_dtype(ds.dtype)
    want = "floating-point" if kind == "f" else "integer"
    if base is None or base.kind not in (("f",) if kind == "f" else ("i", "u")):
        got = f"vlen {base}" if base is not None else str(ds.dtype)
        raise SpikeforgeError(
            f"{path}: '{ds.name.lstrip('/')}' must be variable-length {want} arrays, got "
            f"{got}; write it with h5py.vlen_dtype(np.{'float32' if kind == 'f' else 'uint16'})"
        )
    return base


def _int_column(ds: h5py.Dataset, path: Path) -> np.ndarray:
    if not isinstance(ds, h5py.Dataset):
        raise SpikeforgeError(
            f"{path}: '{ds.name.lstrip('/')}' is an HDF5 group, not a dataset; store it as a "
            "1-D integer array"
        )
    if ds.dtype.kind not in ("i", "u") or ds.ndim != 1:
        raise SpikeforgeError(
            f"{path}: '{ds.name.lstrip('/')}' must be a 1-D integer array, got {ds.dtype} "
            f"with shape {ds.shape}"
        )
    return ds[()].astype(np.int64)


def read_event_file(path: Path, n_channels: int = SHD_CHANNELS) -> EventFile:
    """Read and check one SHD-format file (see the module docstring)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            return _read(handle, path, n_channels)
    except OSError as exc:
        raise SpikeforgeError(
            f"cannot read {path}: not a readable HDF5 file (truncated or corrupt: {exc}); "
            f"replace it with a complete copy"
        ) from exc


def _read(handle: h5py.File, path: Path, n_channels: int) -> EventFile:
    times_ds = _dataset(handle, "spikes/times", path)
    units_ds = _dataset(handle, "spikes/units", path)
    _vlen_base(times_ds, "f", path)
    _vlen_base(units_ds, "i", path)
    labels = _int_column(_dataset(handle, "labels", path), path)
    n = labels.size
    speakers = None
    if "extra/speaker" in handle:
        speakers = _int_column(handle["extra/speaker"], path)
    keys = None
    if "extra/keys" in handle:
        if not isinstance(handle["extra/keys"], h5py.Dataset):
            raise SpikeforgeError(f"{path}: 'extra/keys' is an HDF5 group, not a dataset; "
                                  "store the class names as a 1-D string array")
        keys = [k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
                for k in handle["extra/keys"][()]]
    for name, size in (("spikes/times", times_ds.shape[0]), ("spikes/units", units_ds.shape[0]),
                       ("extra/speaker", n if speakers is None else speakers.size)):
        if size != n:
            raise SpikeforgeError(f"{path}: '{name}' has {size} entries but 'labels' has {n}")
    times_parts, units_parts = [], []
    lengths = np.zeros(n, dtype=np.int64)
    for start in range(0, n, CHUNK):
        t_chunk = times_ds[start : start + CHUNK]
        u_chunk = units_ds[start : start + CHUNK]
        for j, (t, u) in enumerate(zip(t_chunk, u_chunk, strict=True)):
            if t.shape != u.shape:
                raise SpikeforgeError(
                    f"{path}: sample {start + j} has {t.size} spike times but {u.size} units"
                )
            lengths[start + j] = t.size
        if len(t_chunk):
            times_parts.append(np.concatenate(t_chunk).astype(np.float32) * np.float32(1e3))
            units_parts.append(np.concatenate(u_chunk).astype(np.int64).astype(np.int32))
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    times = np.concatenate(times_parts) if times_parts else np.zeros(0, np.float32)
    units = np.concatenate(units_parts) if units_parts else np.zeros(0, np.int32)
    del times_parts, units_parts
    sample_of = np.repeat(np.arange(n, dtype=np.int32), lengths)
    _check_events(path, times, units, sample_of, n_channels)
    _sort_within_samples(path, times, units, ptr, sample_of)
    return EventFile(times, units.astype(np.uint16), ptr, labels, speakers, keys)


def _check_events(path, times, units, sample_of, n_channels) -> None:
    bad = ~np.isfinite(times)
    if bad.any():
        raise SpikeforgeError(f"{path}: sample {sample_of[bad.argmax()]} has a NaN or "
                              f"infinite spike time; remove those events")
    if times.size and times.min() < 0:
        raise SpikeforgeError(
            f"{path}: sample {sample_of[times.argmin()]} has a negative spike time "
            f"({times.min() / 1000:g} s); times must be seconds from the sample start"
        )
    if units.size and (units.min() < 0 or units.max() >= n_channels):
        worst = units.argmax() if units.max() >= n_channels else units.argmin()
        raise SpikeforgeError(
            f"{path}: sample {sample_of[worst]} has channel {units[worst]} outside "
            f"0..{n_channels - 1}; set data.n_channels to the file's channel count"
        )


def _sort_within_samples(path, times, units, ptr, sample_of) -> None:
    if times.size < 2:
        return
    backwards = np.flatnonzero(np.diff(times) < 0)
    backwards = backwards[sample_of[backwards] == sample_of[backwards + 1]]
    if backwards.size == 0:
        return
    samples = np.unique(sample_of[backwards])
    log.warning("%s: spike times of %d sample(s) were not in time order; sorted them",
                path, samples.size)
    for s in samples:
        lo, hi = ptr[s], ptr[s + 1]
        order = np.argsort(times[lo:hi], kind="stable")
        times[lo:hi] = times[lo:hi][order]
        units[lo:hi] = units[lo:hi][order]


def _to_dataset(ef: EventFile, n_classes: int, dt: float, n_steps: int, stride: int,
                n_channels: int) -> SpikeDataset:
    store = EventStore(ef.times_ms, ef.units, ef.ptr, dt, n_steps, stride)
    return SpikeDataset(store, ef.labels, math.ceil(n_channels / stride), n_classes, n_steps,
                        dt, ef.speakers)


def load(
    dt: float = 1.0,
    data_dir: Path | str | None = None,
    variant: str = "shd",
    max_time_ms: float | None = None,
    channel_stride: int = 1,
    n_channels: int = SHD_CHANNELS,
    val_fraction: float = 0.1,
    val_split: str = "speaker",
    split_seed: int = 1234,
    download: bool = True,
    base_url: str = BASE_URL,
) -> DatasetSplits:
    """SHD or SSC splits from ``data_dir`` (default: the download cache).

    Args:
        dt: time step, ms. max_time_ms: simulated window (events later are dropped);
            default 1400 ms (SHD) or 1000 ms (SSC).
        channel_stride: channel downsampling (channel -> channel // stride).
        n_channels: channels in the files (700 for SHD/SSC).
        val_fraction, val_split: SHD has no validation file; ``"speaker"`` holds out whole
            training speakers (about ``val_fraction`` of the samples), ``"random"`` a
            stratified random part. SSC uses ``ssc_valid.h5``.
        download: fetch missing files (``<name>.h5.zip``, checked against
            :data:`PINNED_MD5`) from ``base_url`` (https only) into the folder.
    """
    if variant not in VARIANTS:
        raise SpikeforgeError(f"unknown event dataset {variant!r}; choose shd or ssc")
    if not 1 <= n_channels <= 65536:
        raise SpikeforgeError(f"n_channels must be in 1..65536, got {n_channels}")
    if channel_stride < 1:
        raise SpikeforgeError(f"channel_stride must be >= 1, got {channel_stride}")
    folder = Path(data_dir) if data_dir is not None else default_cache_dir() / variant
    hint = "" if data_dir is not None else " (or pass --data-dir DIR)"
    files = {}
    for split in VARIANTS[variant]["files"]:
        name = f"{variant}_{split}.h5"
        path = ensure_file(name, folder, base_url, PINNED_MD5[f"{name}.zip"], archive="zip",
                           algorithm="md5", allow_download=download, hint=hint)
        files[split] = read_event_file(path, n_channels)
    keys = files["train"].keys
    n_classes = len(keys) if keys else 1 + max(int(f.labels.max(initial=-1))
                                                for f in files.values())
    for split, ef in files.items():
        if ef.labels.size and (ef.labels.min() < 0 or ef.labels.max() >= n_classes):
            raise SpikeforgeError(
                f"{folder / f'{variant}_{split}.h5'}: label {ef.labels.max()} is outside the "
                f"{n_classes} classes listed in extra/keys of the training file"
            )
    max_time_ms = max_time_ms or VARIANTS[variant]["max_time_ms"]
    n_steps = math.ceil(max_time_ms / dt)
    datasets = {split: _to_dataset(ef, n_classes, dt, n_steps, channel_stride, n_channels)
                for split, ef in files.items()}
    for split, ef in files.items():
        late = int(np.sum(ef.times_ms >= n_steps * dt))
        if late:
            log.warning("%s %s: %d of %d events fall after %.0f ms and are dropped", variant,
                        split, late, ef.times_ms.size, n_steps * dt)
    train = datasets["train"]
    if "valid" in datasets:
        return DatasetSplits(variant, train, datasets["valid"], datasets["test"])
    speakers = train.speakers
    if val_split == "speaker" and speakers is not None and np.unique(speakers).size >= 2:
        fit, val = speaker_disjoint_split(speakers, val_fraction, split_seed)
    else:
        if val_split == "speaker":
            log.warning("%s: fewer than 2 training speakers; using a random validation split",
                        variant)
        fit, val, _ = stratified_split(train.labels, (val_fraction, 0.0), split_seed)
    return DatasetSplits(variant, train.subset(fit), train.subset(val), datasets["test"])


def load_ssc(**kwargs) -> DatasetSplits:
    """SSC (three files); see :func:`load`."""
    return load(variant="ssc", **kwargs)
