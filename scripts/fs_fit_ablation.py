"""Which half of the fitted few-spike code buys its latency: per-population K or scales?

Converts a ``spikeforge train-ann`` model as ``spikeforge convert --method fs-fit`` does
(same calibration images, percentile and grid) and evaluates three codes on the test
split, reporting for each the fewest total steps from which accuracy stays within 1 point
of the ANN:

* ``k_only``   greedy per-population K_l with every scale fixed at 1
  (``fit_fs_codes(..., fit_gains=False)``);
* ``gain_only`` one K for every population (the uniform code) with fitted scales;
* ``both``     the shipped fs-fit code (per-population K_l and scales).

Usage::

    python scripts/fs_fit_ablation.py MODEL.pt --data digits
    python scripts/fs_fit_ablation.py mnist-cnn.pt --data mnist --data-dir data/mnist5k

Prints one JSON object (steps within 1 point, and the code there, per variant).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from spikeforge.convert.api import load_model_and_data, prepare_conversion
from spikeforge.convert.evaluate import FS_MAX_STEPS, evaluate_latency, within_1pt
from spikeforge.convert.fs_fit import fit_fs_codes, uniform_fs_codes
from spikeforge.errors import SpikeforgeError


def summary(rows: list[dict], ann_acc: float) -> dict:
    """Steps within 1 point of the ANN and the row there."""
    within, at = within_1pt(rows, ann_acc)
    return {"steps_within_1pt": within,
            "code": None if at is None else at.get("code"),
            "accuracy": None if at is None else at["accuracy"],
            "sops": None if at is None else round(at["sops"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="MODEL.pt written by spikeforge train-ann")
    parser.add_argument("--data", default="digits", help="digits or mnist (default digits)")
    parser.add_argument("--data-dir", type=Path, help="folder with the MNIST IDX files")
    parser.add_argument("--k-max", type=int, default=8,
                        help="largest K per population (default 8, as fs-fit)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"error: {args.model} does not exist; pass a model written by "
              "`spikeforge train-ann`", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        model, splits = load_model_and_data(args.model, args.data, args.data_dir)
    except SpikeforgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    calibration, net, ann_acc = prepare_conversion(model, splits)
    k_max = min(args.k_max, FS_MAX_STEPS)
    t0 = time.perf_counter()
    variants = {
        "k_only": fit_fs_codes(net, calibration, k_max, fit_gains=False),
        "gain_only": uniform_fs_codes(net, calibration, k_max),
        "both": fit_fs_codes(net, calibration, k_max),
    }
    result = {"model": str(args.model), "data": args.data, "ann_test_accuracy": ann_acc,
              "populations": len(net.stages)}
    for name, codes in variants.items():
        rows = evaluate_latency(net, splits.test_x, splits.test_y, "fs-fit", 0, codes=codes)
        result[name] = summary(rows, ann_acc)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
