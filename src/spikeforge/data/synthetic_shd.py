"""Write SHD-format HDF5 files, and synthesise learnable ones (tests, benchmarks, demos).

``write_shd_file`` writes exactly the layout of the published files (vlen float32 times
in seconds, vlen uint16 units, uint16 labels and speakers, class-name keys).
``synthesize_shd`` fills such files with a seeded toy task: every class is a sweep of
activity across the channels with a class-specific start, end and duration, plus
background noise; every speaker shifts the channels and stretches time a little, so a
speaker-disjoint test is harder than the training data (as in SHD).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from spikeforge.atomic import atomic_path


def write_shd_file(
    path: Path, times_s: Sequence[np.ndarray], units: Sequence[np.ndarray],
    labels: np.ndarray, speakers: np.ndarray | None = None, keys: Sequence[str] | None = None,
    times_dtype: np.dtype = np.float32, units_dtype: np.dtype = np.uint16,
) -> None:  # fmt: skip
    """Write one SHD-format file atomically (``times_s`` in seconds, one array per sample)."""
    with atomic_path(Path(path)) as tmp, h5py.File(tmp, "w") as handle:
        spikes = handle.create_group("spikes")
        t_ds = spikes.create_dataset("times", (len(times_s),), h5py.vlen_dtype(times_dtype))
        u_ds = spikes.create_dataset("units", (len(units),), h5py.vlen_dtype(units_dtype))
        for i, (t, u) in enumerate(zip(times_s, units, strict=True)):
            t_ds[i] = np.asarray(t, dtype=times_dtype)
            u_ds[i] = np.asarray(u, dtype=units_dtype)
        handle.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        extra = handle.create_group("extra")
        if speakers is not None:
            extra.create_dataset("speaker", data=np.asarray(speakers, dtype=np.uint16))
        if keys is not None:
            extra.create_dataset("keys", data=[k.encode() for k in keys])


def synth_samples(
    labels: np.ndarray, speakers: np.ndarray, n_classes: int, n_channels: int,
    spikes_per_sample: float, seed: int, duration_s: float = 1.0, noise: float = 0.2,
) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Spike times (s, sorted) and units per sample for the toy task (see module doc)."""
    rng = np.random.default_rng(seed)
    proto = np.random.default_rng(12345)  # class prototypes do not depend on ``seed``
    start = proto.uniform(0.1, 0.9, n_classes) * n_channels
    end = proto.uniform(0.1, 0.9, n_classes) * n_channels
    length = proto.uniform(0.4, 0.9, n_classes) * duration_s
    spread = max(1.0, 0.03 * n_channels)
    times_out, units_out = [], []
    for label, speaker in zip(labels, speakers, strict=True):
        srng = np.random.default_rng([int(speaker), 7])
        shift, stretch = srng.normal(0, 0.02 * n_channels), srng.uniform(0.9, 1.1)
        count = max(1, int(rng.poisson(spikes_per_sample)))
        n_noise = int(rng.binomial(count, noise))
        phase = rng.random(count - n_noise)
        t_sig = 0.05 + phase * length[label] * stretch
        c_sig = start[label] + (end[label] - start[label]) * phase + shift
        c_sig = np.round(c_sig + rng.normal(0, spread, phase.size))
        t = np.concatenate([t_sig, rng.uniform(0, duration_s, n_noise)])
        c = np.concatenate([c_sig, rng.integers(0, n_channels, n_noise)])
        keep = (c >= 0) & (c < n_channels) & (t < duration_s * 1.2)
        order = np.argsort(t[keep], kind="stable")
        times_out.append(t[keep][order].astype(np.float32))
        units_out.append(c[keep][order].astype(np.uint16))
    return times_out, units_out


def synthesize_shd(
    folder: Path, n_train: int = 200, n_test: int = 80, n_classes: int = 4,
    n_speakers: int = 6, n_test_speakers: int = 2, n_channels: int = 700,
    spikes_per_sample: float = 300.0, duration_s: float = 1.0, seed: int = 0,
    variant: str = "shd",
) -> Path:  # fmt: skip
    """Write ``<variant>_train.h5`` and ``<variant>_test.h5`` (and ``_valid`` for ssc) into
    ``folder``; the last ``n_test_speakers`` speakers appear only in the test file (the
    test file also holds samples of the first speakers). Returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    keys = [f"class{c}" for c in range(n_classes)]
    train_speakers = np.arange(n_speakers - n_test_speakers)
    sizes = {"train": n_train, "test": n_test}
    if variant == "ssc":
        sizes["valid"] = n_test
    for index, (split, size) in enumerate(sizes.items()):
        labels = np.arange(size) % n_classes
        pool = train_speakers if split != "test" else np.arange(n_speakers)
        speakers = rng.choice(pool, size)
        if split == "test":  # every new speaker says every class at least once
            new = np.repeat(np.arange(n_speakers - n_test_speakers, n_speakers), n_classes)
            speakers[: min(size, new.size)] = new[: min(size, new.size)]
        times, units = synth_samples(labels, speakers, n_classes, n_channels,
                                     spikes_per_sample, seed * 10 + index, duration_s)
        write_shd_file(folder / f"{variant}_{split}.h5", times, units, labels, speakers, keys)
    return folder
