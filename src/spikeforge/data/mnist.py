"""MNIST from the original IDX files, encoded as spikes (latency or Poisson rate code).

``--data mnist --data-dir DIR`` reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` from DIR (gzipped ``.gz`` or
plain); without DIR they are downloaded once (over HTTPS, MD5-checked against the
published sums pinned in :data:`MD5`) into the cache folder. Gzipped files in the cache,
and files spikeforge downloaded anywhere, are checked against those pinned sums each time
they are used; a file that does not match is deleted with an error saying how to get it
again. 28x28 images -> 784 channels; 10 % of the training images
(stratified, fixed seed) form the validation split.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from spikeforge.data.base import DatasetSplits, SpikeDataset, stratified_split
from spikeforge.data.download import default_cache_dir, ensure_file
from spikeforge.data.encoding import encode_images
from spikeforge.errors import SpikeforgeError

MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist"
MD5 = {  # published MD5 sums of the gzipped IDX files (as pinned by torchvision and tonic)
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLIT_SEED = 1234


def read_idx(path: Path) -> np.ndarray:
    """Array stored in an IDX file (unsigned-byte data; ``.gz`` is decompressed)."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise SpikeforgeError(f"cannot read {path} ({exc}); replace it with a complete copy"
                              ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise SpikeforgeError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise SpikeforgeError(f"{path} is truncated (incomplete IDX header)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise SpikeforgeError(f"{path} holds {len(raw) - header} bytes of data, the header "
                              f"promises {expected} for shape {shape}; the file is truncated")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def locate(stem: str, folder: Path, download: bool = True, hint: str = "") -> Path:
    """Path of the IDX file ``stem`` in ``folder``: ``stem.gz`` (checked against its pinned
    MD5 where :func:`~spikeforge.data.download.verify_on_disk` applies, downloaded when
    missing) or, when only that exists, the uncompressed ``stem`` (no published digest;
    :func:`read_idx` checks its size against its header)."""
    folder = Path(folder)
    if (folder / stem).is_file() and not (folder / f"{stem}.gz").is_file():
        return folder / stem
    return ensure_file(stem + ".gz", folder, MIRROR, MD5[stem + ".gz"], gz=False,
                       allow_download=download, hint=hint, algorithm="md5")


def load(
    dt: float = 1.0, data_dir: Path | str | None = None, encoding: str = "latency",
    t_max_ms: float = 20.0, tail_ms: float = 20.0, max_rate_hz: float = 100.0,
    download: bool = True, seed: int = 0,
) -> DatasetSplits:
    """MNIST splits (train 54,000 / val 6,000 / test 10,000 for the full files).

    ``encoding``: ``latency`` (linear), ``log_latency`` or ``poisson``; the simulated
    window is ``t_max_ms + tail_ms``.
    """
    folder = Path(data_dir) if data_dir is not None else default_cache_dir() / "mnist"
    hint = "" if data_dir is not None else " (or pass --data-dir DIR)"
    arrays = {}
    for part in ("train", "t10k"):
        images = read_idx(locate(f"{part}-images-idx3-ubyte", folder, download, hint))
        labels = read_idx(locate(f"{part}-labels-idx1-ubyte", folder, download, hint))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise SpikeforgeError(f"{folder}: {part} images {images.shape} and labels "
                                  f"{labels.shape} do not match")
        if labels.max(initial=0) > 9:
            raise SpikeforgeError(f"{folder}: {part} labels outside 0..9")
        arrays[part] = (images, labels.astype(np.int64))
    n_steps = int(round((t_max_ms + tail_ms) / dt))
    n_inputs = int(np.prod(arrays["train"][0].shape[1:]))

    def dataset(images: np.ndarray, labels: np.ndarray, part_seed: int) -> SpikeDataset:
        samples = encode_images(images / 255.0, encoding, dt=dt, t_max_ms=t_max_ms,
                                n_steps=n_steps, max_rate_hz=max_rate_hz, seed=part_seed)
        return SpikeDataset(samples, labels, n_inputs, 10, n_steps, dt)

    train_full = dataset(*arrays["train"], seed)
    fit, val, _ = stratified_split(train_full.labels, (0.1, 0.0), SPLIT_SEED)
    return DatasetSplits("mnist", train_full.subset(fit), train_full.subset(val),
                         dataset(*arrays["t10k"], seed + 1))
