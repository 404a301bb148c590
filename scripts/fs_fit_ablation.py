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

from spikeforge.convert.arch import load_ann
from spikeforge.convert.evaluate import FS_MAX_STEPS, evaluate_latency, steps_to_match
from spikeforge.convert.fs_fit import FSCode, fit_fs_codes, fs_output
from spikeforge.convert.ifnet import convert_network
from spikeforge.convert.images import load_images
from spikeforge.convert.train_ann import ann_accuracy

CALIBRATION_SIZE = 2000  # as convert_file's default
PERCENTILE = 99.9


def uniform_codes_with_gains(net, calibration: torch.Tensor, k_max: int) -> list[FSCode]:
    """The uniform code K = 1..k_max on every population, each with fitted scales."""
    x = calibration[:1000]
    n_pop = len(net.stages)
    return [FSCode((k,) * n_pop, fs_output(net, x, (k,) * n_pop, True)[1])
            for k in range(1, k_max + 1)]


def summary(rows: list[dict], ann_acc: float) -> dict:
    """Steps within 1 point of the ANN and the row there."""
    within = steps_to_match(rows, ann_acc)
    at = next((r for r in rows if r["steps"] == within), None)
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
    model, _ = load_ann(args.model)
    splits = load_images(args.data, args.data_dir)
    calibration = splits.train_x[:CALIBRATION_SIZE]
    net = convert_network(model, calibration, PERCENTILE)
    ann_acc = ann_accuracy(model, splits.test_x, splits.test_y)
    k_max = min(args.k_max, FS_MAX_STEPS)
    t0 = time.perf_counter()
    variants = {
        "k_only": fit_fs_codes(net, calibration, k_max, fit_gains=False),
        "gain_only": uniform_codes_with_gains(net, calibration, k_max),
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
