"""Memory of loading an N-MNIST folder of the real layout, against the number of files.

    python benchmarks/nmnist_folder_memory.py [--folder DIR] [--sizes 1000 10000 60000]
        [--events 100] [--bin 2000] [--out results.json]

1. Writes a synthetic N-MNIST folder (``Train/0..9/*.bin``, ``Test/0..9/*.bin``; tiny
   files of ``--events`` moving-pattern events each, 40-bit records) with the full
   training layout: ``max(--sizes)`` training files (60,000 = the real training set) over
   10 class folders, plus 10,000 test files. Generated once into ``--folder`` and reused.
2. For each size N, in a fresh subprocess: ``spikeforge.data.nmnist.load`` on a folder view
   holding the first N training files (symlinked class folders of that many files), then
   bins ``--bin`` samples one after another (the lazy path a DataLoader takes). Reports the
   RSS after imports, the peak RSS minus that baseline for the listing and for the
   binning, the seconds each took, and bytes per file.
3. Writes all rows as JSON (``--out``; default stdout).

If memory is O(files) for the listing and O(events of one sample) for binning, the peak
grows linearly with N at a small constant per file and does not depend on how many
samples are binned.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from pathlib import Path

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

import numpy as np
from spikeforge.data import nmnist
folder, n_bin = Path(sys.argv[1]), int(sys.argv[2])
base = rss()
t0 = time.perf_counter()
splits = nmnist.load(dt=1.0, data_dir=folder, val_fraction=0.1)
t_list = time.perf_counter() - t0
peak_list = peak()
t0 = time.perf_counter()
events = 0
for i in range(min(n_bin, len(splits.train))):
    (steps, units), _ = splits.train[i]
    events += steps.size
t_bin = time.perf_counter() - t0
print(json.dumps({"train_samples": len(splits.train), "val_samples": len(splits.val),
                  "test_samples": len(splits.test), "rss_after_imports_mb": base,
                  "listing_peak_minus_base_mb": peak_list - base,
                  "binning_peak_minus_base_mb": peak() - base, "listing_s": t_list,
                  "binned_samples": min(n_bin, len(splits.train)), "binned_spikes": events,
                  "binning_s": t_bin}))
"""


def generate(folder: Path, n_train: int, n_test: int, n_events: int) -> None:
    """Write the full-layout folder (skipped for class folders that are complete)."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    from spikeforge.data import nmnist

    rng = np.random.default_rng(0)
    for split, total in (("Train", n_train), ("Test", n_test)):
        for digit in range(10):
            sub = folder / split / str(digit)
            count = total // 10
            if sub.is_dir() and len(os.listdir(sub)) >= count:
                continue
            sub.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                ev = nmnist.moving_pattern_events(digit, rng, n_events=n_events)
                (sub / f"{k:05d}.bin").write_bytes(nmnist.encode_nmnist(ev))


def view(folder: Path, n_train: int, dest: Path) -> Path:
    """A folder whose Train/<d> hold the first n_train/10 files of each class (symlinks)
    and whose Test is the full test folder."""
    per_class = n_train // 10
    for digit in range(10):
        sub = dest / "Train" / str(digit)
        sub.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            link = sub / f"{k:05d}.bin"
            if not link.exists():
                link.symlink_to(folder / "Train" / str(digit) / f"{k:05d}.bin")
    test = dest / "Test"
    if not test.exists():
        test.symlink_to(folder / "Test")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/nmnist_full_layout"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 60000])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--bin", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    n_train = max(args.sizes)
    t0 = time.perf_counter()
    generate(args.folder / "full", n_train, 10000, args.events)
    print(f"folder ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows = []
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for size in sorted(args.sizes):
        target = args.folder / "full" if size == n_train else \
            view(args.folder / "full", size, args.folder / f"view{size}")
        proc = subprocess.run([sys.executable, "-c", CHILD, str(target), str(args.bin)],
                              capture_output=True, text=True, env=env, check=True)
        row = {"train_files": size, "test_files": 10000, "events_per_file": args.events,
               **json.loads(proc.stdout.strip().splitlines()[-1])}
        row["listing_bytes_per_file"] = row["listing_peak_minus_base_mb"] * 2**20 / (
            size + 10000)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    result = {"benchmark": "nmnist_folder_memory", "python": sys.version.split()[0],
              "ru_maxrss_unit": "KiB (Linux)", "rows": rows,
              "peak_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
