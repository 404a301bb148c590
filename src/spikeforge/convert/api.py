"""Python API of the conversion route: train the ANN, convert it, write a run folder.

A conversion run folder holds the same files as a gradient-training run::

    config.yaml     the conversion settings (model file, data, method, steps, percentile)
    run.json        versions and start time
    metrics.jsonl   one row per (method, simulation length): steps, accuracy, spikes, sops
    results.json    test_accuracy (at --steps), ann_test_accuracy, ann_macs, steps,
                    spikes/sops per inference, steps_within_1pt, ...
    latency.csv, accuracy_vs_steps.png, accuracy_vs_sops.png
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from spikeforge import __version__
from spikeforge.atomic import write_text_atomic
from spikeforge.convert.arch import load_ann, preset_arch, save_ann
from spikeforge.convert.evaluate import (
    FS_MAX_STEPS,
    evaluate_latency,
    latency_grid,
    within_1pt,
)
from spikeforge.convert.fs_fit import fit_fs_codes
from spikeforge.convert.ifnet import convert_network
from spikeforge.convert.images import load_images
from spikeforge.convert.report import format_table, plot_latency, write_table
from spikeforge.convert.simulate import METHODS
from spikeforge.convert.train_ann import ann_accuracy, train_ann
from spikeforge.errors import SpikeforgeError

DEFAULT_STEPS = {"rate": 256, "ttfs": 64, "fs": 8, "fs-fit": 8}
"""Default --steps: total for rate, per stage (x number of stages) for ttfs and fs."""
PERCENTILE = 99.9
"""Default activation percentile for threshold normalisation."""
CALIBRATION_SIZE = 2000
"""Default number of training images for normalisation and the fs-fit search."""


def train_ann_file(data: str, out: Path, arch: str = "mlp", hidden: tuple[int, ...] = (128,),
                   epochs: int = 40, seed: int = 0, data_dir: Path | None = None,
                   log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train a bundled ANN on an image dataset and save it as ``out`` (MODEL.pt)."""
    splits = load_images(data, data_dir)
    description = preset_arch(arch, splits.input_shape, splits.n_classes, tuple(hidden))
    model, rows = train_ann(description, splits, epochs=epochs, seed=seed, log=log)
    test = ann_accuracy(model, splits.test_x, splits.test_y)
    save_ann(out, model, description, splits.input_shape, data, test)
    return {"ann_test_accuracy": test, "ann_val_accuracy": max(r["val_accuracy"] for r in rows),
            "epochs": epochs, "arch": arch, "model": str(out)}


def _prepare(out: Path, config_text: str) -> dict[str, Any] | None:
    """Existing results of an identical run, or None when ``out`` is free."""
    if not out.exists():
        return None
    existing = out / "config.yaml"
    if existing.is_file() and existing.read_text() == config_text and \
            (out / "results.json").is_file():
        return json.loads((out / "results.json").read_text())
    raise SpikeforgeError(f"output folder {out} already exists with other content; choose "
                          "another --out")


def load_model_and_data(model_path: Path, data: str, data_dir: Path | None = None):
    """The ANN of ``MODEL.pt`` and the image splits of ``data``; one-line error if the model
    was trained on inputs of another shape."""
    model, meta = load_ann(model_path)
    splits = load_images(data, data_dir)
    if tuple(splits.input_shape) != tuple(meta["input_shape"]):
        raise SpikeforgeError(f"model {model_path} expects inputs {meta['input_shape']}, "
                              f"dataset {data!r} has {list(splits.input_shape)}; use the "
                              "dataset the model was trained on")
    return model, splits


def prepare_conversion(model, splits, percentile: float = PERCENTILE,
                       calibration_size: int = CALIBRATION_SIZE):
    """(calibration images, converted network, ANN test accuracy) as :func:`convert_file`
    computes them before simulating."""
    calibration = splits.train_x[:calibration_size]
    net = convert_network(model, calibration, percentile)
    return calibration, net, ann_accuracy(model, splits.test_x, splits.test_y)


def convert_file(model_path: Path, data: str, method: str = "rate", steps: int | None = None,
                 percentile: float = PERCENTILE, out: Path | None = None,
                 data_dir: Path | None = None, calibration_size: int = CALIBRATION_SIZE,
                 threads: int = 0) -> dict[str, Any]:
    """Convert ``MODEL.pt``, evaluate accuracy vs latency on the test split, write ``out``.

    ``method``: rate, ttfs, fs, fs-fit or all. ``steps``: total time steps of the reported
    result (and the largest latency of the sweep); default 256 for rate, 64 x stages for
    ttfs, 8 x stages for fs and fs-fit (fs-fit starts its greedy search from
    K = steps // stages per population). Returns the results dictionary.
    """
    methods = list(METHODS) if method == "all" else [method]
    if any(m not in METHODS for m in methods):
        raise SpikeforgeError(f"unknown conversion method {method!r}; choose rate, ttfs, fs, "
                              "fs-fit or all")
    if threads > 0:
        torch.set_num_threads(threads)
    model, splits = load_model_and_data(model_path, data, data_dir)
    config = {"model": str(Path(model_path).resolve()), "data": data, "method": method,
              "steps": steps, "percentile": percentile, "calibration_size": calibration_size,
              "data_dir": str(data_dir) if data_dir else None}
    config_text = yaml.safe_dump(config, sort_keys=False)
    out = Path(out) if out is not None else Path("runs") / f"convert-{data}-{method}"
    done = _prepare(out, config_text)
    if done is not None:
        return done
    calibration, net, ann_acc = prepare_conversion(model, splits, percentile,
                                                   calibration_size)
    n_stages = len(net.stages)
    rows: list[dict[str, Any]] = []
    reported: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for m in methods:
        total = steps if steps is not None else (
            DEFAULT_STEPS[m] * (1 if m == "rate" else n_stages))
        grid = latency_grid(m, total, n_stages)
        codes = (fit_fs_codes(net, calibration, min(max(grid), FS_MAX_STEPS))
                 if m == "fs-fit" else None)
        m_rows = evaluate_latency(net, splits.test_x, splits.test_y, m, total, grid=grid,
                                  codes=codes)
        rows += m_rows
        final = max(m_rows, key=lambda r: r["steps"])
        within, at = within_1pt(m_rows, ann_acc)
        reported[m] = {**final, "steps_within_1pt": within, "at_within_1pt": at}
    seconds = time.perf_counter() - t0
    main = reported[methods[0]]
    results = {
        "test_accuracy": main["accuracy"], "ann_test_accuracy": ann_acc,
        "accuracy_gap": ann_acc - main["accuracy"], "method": methods[0],
        "steps": main["steps"], "spikes_per_inference": main["spikes"],
        "sops_per_inference": main["sops"], "ann_macs": net.ann_macs,
        "steps_within_1pt": main["steps_within_1pt"], "percentile": percentile,
        "scales": net.scales, "n_neurons": net.n_neurons, "eval_seconds": round(seconds, 3),
        "run_dir": str(out),
        **({"per_method": reported} if len(methods) > 1 else {}),
    }  # fmt: skip
    _write_run(out, config_text, rows, results, ann_acc, net.ann_macs)
    results["table"] = format_table(rows, ann_acc, net.ann_macs)
    return results


def _write_run(out: Path, config_text: str, rows: list[dict[str, Any]],
               results: dict[str, Any], ann_acc: float, ann_macs: int) -> None:
    """Write the run folder in a staging directory and rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        (staging / "config.yaml").write_text(config_text)
        meta = {"route": "convert", "spikeforge_version": __version__,
                "python": platform.python_version(), "torch": torch.__version__,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_text_atomic(staging / "run.json", json.dumps(meta, indent=2) + "\n")
        write_text_atomic(staging / "metrics.jsonl",
                          "".join(json.dumps(r) + "\n" for r in rows))
        write_table(rows, staging / "latency.csv")
        plot_latency(rows, ann_acc, ann_macs, staging / "accuracy_vs_steps.png",
                     staging / "accuracy_vs_sops.png")
        write_text_atomic(staging / "results.json", json.dumps(results, indent=2) + "\n")
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
