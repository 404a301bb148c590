"""Run orchestration for ``train.method: stdp``: same run folder and results as gradient
training (config.yaml, run.json, metrics.jsonl, checkpoint.pt, model.pt, results.json,
plots), resumable after each epoch.

Per epoch the network learns on the shuffled training samples; the responses recorded
while learning give the neuron-to-class assignment for that epoch's validation accuracy
(as in Diehl & Cook 2015). The final model is evaluated with learning off: assignment
from a frozen pass over the training split, then test accuracy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spikeforge.atomic import write_text_atomic
from spikeforge.data import DatasetSplits
from spikeforge.data.base import SpikeDataset
from spikeforge.data.registry import load_data
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments import run_folder as rf
from spikeforge.experiments.config import RunConfig, load_config
from spikeforge.experiments.run_checks import check_splits
from spikeforge.experiments.stdp_plots import (
    plot_receptive_fields,
    plot_stdp_curves,
    plot_weight_distribution,
)
from spikeforge.train.checkpoint import load_checkpoint, save_checkpoint
from spikeforge.train.stdp import StdpNetwork, StdpParams, StdpRule
from spikeforge.train.stdp_readout import assign_labels, classify, response_matrix

N_BINS = 40


def build_stdp_network(config: RunConfig, n_inputs: int) -> StdpNetwork:
    """The STDP network a run config describes (fresh weights from ``config.seed``)."""
    c = config.stdp
    params = StdpParams(
        n_neurons=c.n_neurons, tau_mem=c.tau_mem, tau_syn=c.tau_syn, threshold=c.threshold,
        theta_plus=c.theta_plus, tau_theta=c.tau_theta, inhibition=c.inhibition, wta=c.wta,
        norm=None if c.weight_mean is None else c.weight_mean * n_inputs,
    )  # fmt: skip
    rule = StdpRule(c.a_plus, c.a_minus, c.tau_plus, c.tau_minus, c.w_max)
    if config.data.dt >= min(c.tau_mem, c.tau_syn):
        raise SpikeforgeError(f"stdp: dt={config.data.dt} ms must be below tau_mem and "
                              "tau_syn; reduce data.dt")
    return StdpNetwork(n_inputs, params, rule, config.data.dt, seed=config.seed)


def _histogram(net: StdpNetwork) -> np.ndarray:
    return np.histogram(net.weight, bins=N_BINS, range=(0.0, net.rule.w_max))[0]


def _accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((pred == labels).mean()) if len(labels) else 0.0


def _ops(net: StdpNetwork, dataset: SpikeDataset, counts: np.ndarray) -> dict[str, float]:
    """Per-inference spikes, synaptic operations and latency of the frozen network.

    SOPs: each input event over its non-zero input synapses, each excitatory spike over
    its ``n_neurons - 1`` lateral-inhibition synapses."""
    fanout = np.count_nonzero(net.weight, axis=1)
    input_events = np.array([len(s[1]) for s in dataset.samples], dtype=np.float64)
    input_sops = np.array([fanout[np.asarray(s[1], dtype=np.int64)].sum()
                           for s in dataset.samples], dtype=np.float64)
    exc = counts.sum(1)
    n = net.params.n_neurons
    return {"spikes_per_inference": float((input_events + exc).mean()),
            "sops_per_inference": float((input_sops + exc * (n - 1)).mean()),
            "latency_steps": int(dataset.n_steps)}


def _rate_hz(counts: np.ndarray, dataset: SpikeDataset) -> float:
    seconds = dataset.n_steps * dataset.dt / 1000.0
    return float(counts.mean() / seconds) if counts.size else 0.0


def train_stdp_run(config: RunConfig, out: Path, console: Console | None = None,
                   on_epoch: Callable[[dict[str, Any]], None] | None = None,
                   splits: DatasetSplits | None = None) -> dict[str, Any]:
    """Train (or resume) an STDP run into ``out``; returns the results dictionary."""
    console = console or Console(stderr=True)
    splits = splits or load_data(config.data)
    check_splits(splits)
    net = build_stdp_network(config, splits.train.n_inputs)
    with rf.open_run_folder(out, config) as resuming:  # locked while training
        return _train_stdp_locked(config, Path(out), resuming, net, splits, console, on_epoch)


def _train_stdp_locked(config: RunConfig, out: Path, resuming: bool, net, splits: DatasetSplits,
                       console: Console, on_epoch: Callable[[dict[str, Any]], None] | None
                       ) -> dict[str, Any]:
    """The epochs of :func:`train_stdp_run`, run while holding the folder's lock."""
    if resuming and (out / rf.RESULTS).is_file():
        console.print(f"[green]run in {out} is already complete[/green]")
        return json.loads((out / rf.RESULTS).read_text())
    start, metrics, elapsed = 0, [], 0.0
    histograms = [_histogram(net)]
    if resuming and (out / rf.CHECKPOINT).is_file():
        state = load_checkpoint(out / rf.CHECKPOINT)
        net.load_state({k: v.numpy() for k, v in state["model"].items()})
        start, elapsed = int(state["epoch"]), float(state.get("train_seconds", 0.0))
        histograms = list(state["weight_hist"].numpy())
        metrics = [m for m in rf.read_metrics(out) if m["epoch"] <= start]
        console.print(f"resuming {out} after epoch {start}")
    train, n_classes = splits.train, splits.train.n_classes
    limit = config.stdp.max_train_samples or len(train)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total} samples"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for epoch in range(start, config.train.epochs):
            order = np.random.default_rng(config.seed + epoch).permutation(len(train))[:limit]
            task = progress.add_task(f"epoch {epoch + 1}", total=len(order))
            t0 = time.perf_counter()
            counts = np.zeros((len(order), net.params.n_neurons))
            peaks = np.zeros_like(counts)
            for k, i in enumerate(order):
                steps, units = train.samples[int(i)]
                counts[k], peaks[k] = net.present(steps, units, train.n_steps, learn=True)
                progress.advance(task)
            progress.remove_task(task)
            elapsed += time.perf_counter() - t0
            learned = response_matrix(counts, peaks)
            assignments = assign_labels(learned, train.labels[order], n_classes)
            val_counts, val_peaks = net.responses(splits.val.samples, splits.val.n_steps)
            val_pred = classify(response_matrix(val_counts, val_peaks), assignments, n_classes)
            histograms.append(_histogram(net))
            row = {"epoch": epoch + 1,
                   "train_accuracy": _accuracy(classify(learned, assignments, n_classes),
                                               train.labels[order]),
                   "val_accuracy": _accuracy(val_pred, splits.val.labels),
                   "spikes_per_sample": float(counts.sum(1).mean()),
                   "silent_fraction": float((counts.sum(1) == 0).mean()),
                   "hidden_rate_hz": _rate_hz(val_counts, splits.val),
                   "theta_mean": float(net.theta.mean()),
                   "weight_mean": float(net.weight.mean()),
                   "weight_std": float(net.weight.std()), "train_seconds": elapsed}
            metrics.append(row)
            rf.write_metrics(out, metrics)
            save_checkpoint(out / rf.CHECKPOINT, {
                "model": {k: torch.from_numpy(v) for k, v in net.state().items()},
                "epoch": epoch + 1, "train_seconds": elapsed,
                "weight_hist": torch.from_numpy(np.stack(histograms))})
            console.print(f"epoch {epoch + 1:3d}  train {row['train_accuracy']:.3f}  "
                          f"val {row['val_accuracy']:.3f}  spikes/sample "
                          f"{row['spikes_per_sample']:.2f}")
            if on_epoch is not None:
                on_epoch(row)
    return _finish(config, net, splits, out, metrics, elapsed, np.stack(histograms))


def _evaluate(net: StdpNetwork, splits: DatasetSplits) -> dict[str, Any]:
    """Frozen assignment on the training split, then test accuracy, spikes and SOPs."""
    n_classes = splits.train.n_classes
    train_resp = response_matrix(*net.responses(splits.train.samples, splits.train.n_steps))
    assignments = assign_labels(train_resp, splits.train.labels, n_classes)
    test_counts, test_peaks = net.responses(splits.test.samples, splits.test.n_steps)
    pred = classify(response_matrix(test_counts, test_peaks), assignments, n_classes)
    return {"assignments": assignments,
            "test_accuracy": _accuracy(pred, splits.test.labels),
            "train_accuracy": _accuracy(classify(train_resp, assignments, n_classes),
                                        splits.train.labels),
            "hidden_rate_hz": _rate_hz(test_counts, splits.test),
            "test_silent_fraction": float((test_counts.sum(1) == 0).mean()),
            **_ops(net, splits.test, test_counts)}


def _finish(config: RunConfig, net: StdpNetwork, splits: DatasetSplits, out: Path,
            metrics: list[dict[str, Any]], elapsed: float, histograms: np.ndarray
            ) -> dict[str, Any]:
    ev = _evaluate(net, splits)
    assignments = ev.pop("assignments")
    save_checkpoint(out / rf.MODEL, {
        "model": {k: torch.from_numpy(v) for k, v in net.state().items()},
        "assignments": torch.from_numpy(assignments), "epoch": config.train.epochs})
    plot_receptive_fields(net.weight, assignments, out / "receptive_fields.png")
    plot_weight_distribution(histograms, np.linspace(0.0, net.rule.w_max, N_BINS + 1),
                             out / "weight_distribution.png")
    if metrics:
        plot_stdp_curves(metrics, out / "learning_curves.png")
    results = {
        "test_accuracy": ev["test_accuracy"], "test_loss": None,
        "val_accuracy": metrics[-1]["val_accuracy"] if metrics else None,
        "epochs": config.train.epochs, "train_seconds": round(elapsed, 3),
        "method": "stdp", "chance_accuracy": 1.0 / splits.train.n_classes,
        **{k: v for k, v in ev.items() if k != "test_accuracy"},
        "neurons_per_class": np.bincount(assignments,
                                         minlength=splits.train.n_classes).tolist(),
        "run_dir": str(out),
    }  # fmt: skip
    write_text_atomic(out / rf.RESULTS, json.dumps(results, indent=2) + "\n")
    return results


def evaluate_stdp_run(out: Path) -> dict[str, Any]:
    """Re-evaluate a finished STDP run folder's final model on its test split."""
    out = Path(out)
    config = load_config(out / rf.CONFIG)
    splits = load_data(config.data)
    net = build_stdp_network(config, splits.train.n_inputs)
    state = load_checkpoint(out / rf.MODEL)
    net.load_state({k: v.numpy() for k, v in state["model"].items()})
    ev = _evaluate(net, splits)
    ev.pop("assignments")
    return {**ev, "run_dir": str(out)}
