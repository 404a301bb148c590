"""Analogue image splits for the ANN route, identical to the spike datasets' splits.

``digits``: sklearn's 8x8 images scaled to [0, 1] (pixel / 16) with the stratified
70/15/15 split of :mod:`spikeforge.data.digits` (same seed, same indices).
``mnist``: the IDX files read by :mod:`spikeforge.data.mnist` (pixel / 255), its 10 %
stratified validation split and the 10,000 test images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikeforge.errors import SpikeforgeError

IMAGE_DATASETS = ("digits", "mnist")


@dataclass
class ImageSplits:
    """Images ``[N, C, H, W]`` float32 in [0, 1] and int64 labels per split."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int

    def __post_init__(self) -> None:
        from spikeforge.data.encoding import check_unit_range

        for split in ("train_x", "val_x", "test_x"):  # NaN/inf/range, naming the sample
            check_unit_range(getattr(self, split).detach().cpu(), f"{self.name} {split}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def _tensors(images: np.ndarray, labels: np.ndarray, idx: np.ndarray):
    x = torch.as_tensor(images[idx], dtype=torch.float32).unsqueeze(1)
    return x, torch.as_tensor(labels[idx], dtype=torch.long)


def _digits() -> ImageSplits:
    from sklearn.datasets import load_digits

    from spikeforge.data import digits
    from spikeforge.data.base import stratified_split

    bunch = load_digits()
    images = bunch.images / 16.0
    labels = bunch.target.astype(np.int64)
    train, val, test = stratified_split(labels, (0.15, 0.15), digits.SPLIT_SEED)
    return ImageSplits("digits", *_tensors(images, labels, train),
                       *_tensors(images, labels, val), *_tensors(images, labels, test), 10)


def _mnist(data_dir: Path | str | None, download: bool) -> ImageSplits:
    from spikeforge.data import mnist
    from spikeforge.data.base import stratified_split
    from spikeforge.data.download import default_cache_dir, ensure_file

    folder = Path(data_dir) if data_dir is not None else default_cache_dir() / "mnist"
    hint = "" if data_dir is not None else " (or pass --data-dir DIR)"

    def read(stem: str) -> np.ndarray:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return mnist.read_idx(folder / name)
        path = ensure_file(stem + ".gz", folder, mnist.MIRROR, mnist.MD5[stem + ".gz"],
                           gz=False, allow_download=download, hint=hint, algorithm="md5")
        return mnist.read_idx(path)

    train_images = read("train-images-idx3-ubyte") / 255.0
    train_labels = read("train-labels-idx1-ubyte").astype(np.int64)
    test_images = read("t10k-images-idx3-ubyte") / 255.0
    test_labels = read("t10k-labels-idx1-ubyte").astype(np.int64)
    fit, val, _ = stratified_split(train_labels, (0.1, 0.0), mnist.SPLIT_SEED)
    all_test = np.arange(len(test_labels))
    return ImageSplits("mnist", *_tensors(train_images, train_labels, fit),
                       *_tensors(train_images, train_labels, val),
                       *_tensors(test_images, test_labels, all_test), 10)


def load_images(name: str, data_dir: Path | str | None = None,
                download: bool = True) -> ImageSplits:
    """Image splits of a dataset the ANN route supports (``digits`` or ``mnist``)."""
    if name == "digits":
        if data_dir is not None:
            raise SpikeforgeError("dataset 'digits' is built in and takes no --data-dir")
        return _digits()
    if name == "mnist":
        return _mnist(data_dir, download)
    raise SpikeforgeError(f"the ANN route needs an image dataset; {name!r} is not one of "
                          f"{', '.join(IMAGE_DATASETS)}")
