"""Data-handling memory (and time per epoch) of a full-size SHD training set.

    python benchmarks/shd_data_memory.py [--folder DIR] [--spikes 8000] [--train-batches 3]

1. Writes a synthetic SHD-format pair of files of the real size (8,156 train / 2,264 test
   samples, 700 channels, about ``--spikes`` events per sample over <= 1.2 s) into
   ``--folder`` (kept and reused; generated once).
2. In a fresh subprocess: loads them with the recipe config (configs/shd_eventprop.yaml:
   1 ms steps, delay lines x10, shift + appended blends, so an epoch holds the N
   training samples plus N lazily computed blends) and runs one full training epoch of
   *data handling* (augment, delay-line expansion, binning, collation into Events)
   without the network. Reports peak RSS minus the RSS after imports, and the
   bytes held by the event arrays.
3. Optionally times ``--train-batches`` real training batches of the recipe (forward +
   EventProp backward + Adam) and extrapolates to one epoch.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(folder: Path, spikes: float) -> None:
    from spikeforge.data.synthetic_shd import synth_samples, write_shd_file

    folder.mkdir(parents=True, exist_ok=True)
    for split, size, seed in (("train", 8156, 1), ("test", 2264, 2)):
        path = folder / f"shd_{split}.h5"
        if path.is_file():
            continue
        labels = np.arange(size) % 20
        speakers = np.random.default_rng(seed).integers(0, 10 if split == "train" else 12, size)
        t0 = time.perf_counter()
        times, units = synth_samples(labels, speakers, 20, 700, spikes, seed, duration_s=1.0)
        write_shd_file(path, times, units, labels, speakers, [f"c{i}" for i in range(20)])
        print(f"wrote {path} ({sum(len(t) for t in times) / size:.0f} events/sample, "
              f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr)


def measure(folder: Path, train_batches: int) -> dict:
    """Runs in the child process."""
    import torch

    from spikeforge.data.augment import Augmenter
    from spikeforge.data.base import iterate_batches
    from spikeforge.data.registry import load_data
    from spikeforge.experiments.config import load_config

    torch.set_num_threads(2)
    config = load_config(ROOT / "configs" / "shd_eventprop.yaml",
                         {"data.data_dir": str(folder)})
    base = _rss_mb()
    t0 = time.perf_counter()
    splits = load_data(config.data)
    load_s = time.perf_counter() - t0
    after_load = _rss_mb()
    store = splits.train.samples
    augmenter = Augmenter.from_specs(config.data.augment, splits.train)
    epoch_set = augmenter.epoch_dataset(0, 0)  # originals + appended blends
    t0 = time.perf_counter()
    n_events = 0
    for events, _ in iterate_batches(epoch_set, config.train.batch_size, True, 0,
                                     augmenter.for_epoch(0, 0)):
        n_events += events.n_events
    epoch_data_s = time.perf_counter() - t0
    result = {
        "train_samples": len(splits.train), "epoch_samples": len(epoch_set),
        "val_samples": len(splits.val),
        "test_samples": len(splits.test),
        "events_per_sample_in_file": float(np.diff(store.ptr).mean()),
        "event_arrays_mb": round(store.nbytes / 2**20, 1),
        "rss_after_imports_mb": round(base, 1),
        "rss_after_load_mb": round(after_load, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
        "data_peak_minus_imports_mb": round(_peak_mb() - base, 1),
        "load_seconds": round(load_s, 1),
        "epoch_data_handling_seconds": round(epoch_data_s, 1),
        "expanded_events_per_sample_per_epoch": round(n_events / len(epoch_set)),
    }
    if train_batches:
        from spikeforge.experiments.loading import run_trainer

        trainer = run_trainer(config, splits)
        small = splits.train.subset(np.arange(train_batches * config.train.batch_size))
        trainer.splits = type(splits)(splits.name, small, splits.val, splits.test)
        trainer.augmenter = Augmenter.from_specs(config.data.augment, small)
        t0 = time.perf_counter()
        row = trainer.train_epoch(0)
        seconds = time.perf_counter() - t0
        batches = -(-len(trainer.augmenter.epoch_dataset(0, 0)) // config.train.batch_size)
        per_batch = seconds / batches
        result.update({
            "train_batches_timed": batches,
            "seconds_per_batch_of_32": round(per_batch, 2),
            "extrapolated_epoch_minutes": round(per_batch * len(epoch_set) / 32 / 60, 1),
            "hidden_rate_hz_during_timing": round(trainer.evaluate(small).hidden_rate_hz, 1),
            "train_loss": round(row["train_loss"], 3),
        })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/spikeforge_shd_fullsize"))
    parser.add_argument("--spikes", type=float, default=8000.0)
    parser.add_argument("--train-batches", type=int, default=0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.folder, args.train_batches)))
        return
    generate(args.folder, args.spikes)
    proc = subprocess.run([sys.executable, __file__, "--child", "--folder", str(args.folder),
                           "--train-batches", str(args.train_batches)],
                          capture_output=True, text=True, check=True)
    print(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
