#!/usr/bin/env python
"""Logistic-regression baseline for SHD-format data: binned spike counts -> class.

Reads ``shd_train.h5`` and ``shd_test.h5`` from ``--data-dir`` (SHD itself, or the
spoken-digit set of ``scripts/make_spoken_digits.py``), counts every sample's spikes in
``--time-bins`` equal time bins over ``--max-time-ms`` times ``--channel-groups`` equal
groups of neighbouring channels, takes log(1 + count), standardises each feature with
the training mean and deviation, and fits a multinomial logistic regression (torch,
full-batch L-BFGS, L2 penalty ``--l2`` on the weights) to the whole training file. The
test accuracy is on the test file's speakers, which in SHD and in the spoken-digit set
are absent from training.

    python scripts/logreg_baseline.py --data-dir /work/devdata/spoken_digits
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spikeforge.data.shd import SHD_CHANNELS, EventFile, read_event_file
from spikeforge.errors import SpikeforgeError


def features(ef: EventFile, time_bins: int, channel_groups: int, max_time_ms: float,
             n_channels: int) -> np.ndarray:
    """log(1 + spike count) per (time bin, channel group): float32 [N, bins * groups]."""
    n = ef.labels.size
    sample = np.repeat(np.arange(n), np.diff(ef.ptr))
    keep = ef.times_ms < max_time_ms
    t_bin = (ef.times_ms[keep] * (time_bins / max_time_ms)).astype(np.int64)
    c_bin = ef.units[keep].astype(np.int64) * channel_groups // n_channels
    flat = (sample[keep] * time_bins + t_bin) * channel_groups + c_bin
    counts = np.bincount(flat, minlength=n * time_bins * channel_groups)
    return np.log1p(counts.reshape(n, time_bins * channel_groups)).astype(np.float32)


def fit(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, iterations: int,
        seed: int) -> torch.nn.Linear:
    """Multinomial logistic regression on standardised ``x`` [N, F], labels ``y`` [N]."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(x.shape[1], n_classes)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=iterations,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xs), ys)
        loss = loss + 0.5 * l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return model


def accuracy(model: torch.nn.Linear, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def run(data_dir: Path, time_bins: int = 10, channel_groups: int = 70,
        max_time_ms: float = 1000.0, l2: float = 1e-3, iterations: int = 300,
        seed: int = 0, n_channels: int = SHD_CHANNELS) -> dict:
    """Fit on ``shd_train.h5``, score on ``shd_test.h5``; returns the result dict."""
    start = time.perf_counter()
    paths = {split: Path(data_dir) / f"shd_{split}.h5" for split in ("train", "test")}
    for path in paths.values():
        if not path.is_file():
            raise SpikeforgeError(f"{path} is missing; --data-dir must hold shd_train.h5 and "
                                  "shd_test.h5 (make them with scripts/make_spoken_digits.py)")
    files = {split: read_event_file(path, n_channels) for split, path in paths.items()}
    n_classes = len(files["train"].keys or []) or 1 + int(max(f.labels.max() for f in
                                                             files.values()))
    x = {s: features(f, time_bins, channel_groups, max_time_ms, n_channels)
         for s, f in files.items()}
    y = {s: f.labels.astype(np.int64) for s, f in files.items()}
    mean, std = x["train"].mean(0), x["train"].std(0) + 1e-6
    x = {s: (v - mean) / std for s, v in x.items()}
    model = fit(x["train"], y["train"], n_classes, l2, iterations, seed)
    speakers = files["test"].speakers
    return {
        "train_accuracy": round(accuracy(model, x["train"], y["train"]), 4),
        "test_accuracy": round(accuracy(model, x["test"], y["test"]), 4),
        "train_samples": int(y["train"].size), "test_samples": int(y["test"].size),
        "test_speakers": sorted(set(speakers.tolist())) if speakers is not None else None,
        "features": int(x["train"].shape[1]), "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, metavar="DIR", required=True,
                        help="folder with shd_train.h5 and shd_test.h5")
    parser.add_argument("--time-bins", type=int, metavar="N", default=10,
                        help="time bins (default 10)")
    parser.add_argument("--channel-groups", type=int, metavar="N", default=70,
                        help="channel groups (default 70)")
    parser.add_argument("--max-time-ms", type=float, metavar="X", default=1000.0,
                        help="window binned, ms; later spikes are ignored (default 1000)")
    parser.add_argument("--channels", type=int, metavar="N", default=SHD_CHANNELS,
                        help="channels in the files (default 700)")
    parser.add_argument("--l2", type=float, metavar="X", default=1e-3,
                        help="L2 penalty (default 1e-3)")
    parser.add_argument("--iterations", type=int, metavar="N", default=300,
                        help="L-BFGS iterations (default 300)")
    parser.add_argument("--seed", type=int, metavar="N", default=0, help="seed (default 0)")
    args = parser.parse_args(argv)
    try:
        for name in ("time_bins", "channel_groups", "channels", "iterations"):
            if getattr(args, name) < 1:
                raise SpikeforgeError(f"--{name.replace('_', '-')} must be >= 1")
        if args.channel_groups > args.channels:
            raise SpikeforgeError("--channel-groups must not exceed --channels")
        if args.max_time_ms <= 0 or args.l2 < 0:
            raise SpikeforgeError("--max-time-ms must be > 0 and --l2 >= 0")
        result = run(args.data_dir, args.time_bins, args.channel_groups, args.max_time_ms,
                     args.l2, args.iterations, args.seed, args.channels)
    except SpikeforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
