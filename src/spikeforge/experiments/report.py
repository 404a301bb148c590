"""``spikeforge report DIR``: an HTML page plus PNG figures for a sweep or a CV folder.

Sweep: best trials table, all trials (with errors), parameter importance (fANOVA),
validation accuracy against each parameter, 2-D heatmaps for parameter pairs, overlaid
learning curves. CV: per-fold and per-speaker accuracy, pooled confusion matrix, fold
learning curves. Output goes to ``DIR/report/`` (``report.html`` + ``*.png``), written
into a staging folder and swapped in whole.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikeforge.errors import SpikeforgeError  # noqa: E402
from spikeforge.experiments import run_folder as rf  # noqa: E402
from spikeforge.experiments.plot_axes import integer_epoch_axis  # noqa: E402

REPORT_DIR, REPORT_HTML = "report", "report.html"
MAX_PAIR_PARAMS = 6
MIN_TRIALS_FOR_IMPORTANCE = 10
"""Fewer completed trials: no fANOVA importance or 2-D heatmaps (a caveat instead)."""


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(
            f'<td class="text">{html.escape(_fmt(c))}</td>' if isinstance(c, str)
            else f"<td>{html.escape(_fmt(c))}</td>" for c in row)
        css = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _figure(name: str, caption: str) -> str:
    return (f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _page(title: str, meta: str, body: str) -> str:
    template = resources.files("spikeforge.experiments").joinpath("report_template.html")
    return Template(template.read_text()).substitute(title=html.escape(title),
                                                     meta=html.escape(meta), body=body)


def _learning_curves(run_dirs: list[tuple[str, Path, float | None]], path: Path,
                     title: str) -> bool:
    """Validation accuracy per epoch of several runs on one axis; best run thick."""
    curves = [(label, rf.read_metrics(d), v) for label, d, v in run_dirs]
    curves = [(label, m, v) for label, m, v in curves if m]
    if not curves:
        return False
    values = [v for _, _, v in curves if v is not None]
    best = max(values) if values else None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    cmap = plt.get_cmap("viridis")
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    for label, metrics, value in curves:
        frac = 0.5 if value is None or hi == lo else (value - lo) / (hi - lo)
        thick = value is not None and value == best
        ax.plot([m["epoch"] for m in metrics], [m["val_accuracy"] for m in metrics],
                marker="o", ms=3, color=cmap(frac), lw=2.5 if thick else 1.0,
                label=label if thick else None, alpha=0.9)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title=title, ylim=(0, 1))
    integer_epoch_axis(ax, [m["epoch"] for _, metrics, _ in curves for m in metrics])
    if best is not None:
        ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)
    return True


# -- sweep ----------------------------------------------------------------------------
def _param_axis(dist, values: list[Any]) -> tuple[np.ndarray, list[str] | None, bool]:
    """Numeric x positions for param values; tick labels for categorical; log flag."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        choices = list(dist.choices)
        return (np.array([choices.index(v) for v in values], dtype=float),
                [str(c) for c in choices], False)
    return np.array(values, dtype=float), None, bool(getattr(dist, "log", False))


def _bins(x: np.ndarray, labels: list[str] | None, log: bool, n: int = 6) -> np.ndarray:
    if labels is not None:
        return np.arange(len(labels) + 1) - 0.5
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo == hi:
        return np.array([lo - 0.5, hi + 0.5])
    return np.geomspace(lo, hi, n + 1) if log else np.linspace(lo, hi, n + 1)


def _sweep_figures(study, out: Path) -> list[str]:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    figures: list[str] = []
    if not done:
        return figures
    names = sorted({name for t in done for name in t.params})
    values = np.array([t.value for t in done], dtype=float)
    few = len(done) < MIN_TRIALS_FOR_IMPORTANCE
    if few:
        figures.append(
            f'<p class="caveat">Only {len(done)} completed trial(s): parameter importance '
            f"(fANOVA) and 2-D heatmaps need at least {MIN_TRIALS_FOR_IMPORTANCE} and are "
            "not drawn; the per-parameter plots below show single trials, not trends.</p>")
    try:
        from optuna.importance import get_param_importances

        importance = {} if few else get_param_importances(study)
    except (RuntimeError, ValueError):
        importance = {}
    if importance:
        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(importance)))
        keys = list(importance)[::-1]
        ax.barh(keys, [importance[k] for k in keys], color="#4c72b0")
        ax.set(xlabel="importance (fANOVA, normalised)", title="Parameter importance")
        _save(fig, out / "importance.png")
        figures.append(_figure("importance.png", "Parameter importance (fANOVA)"))
    axes: dict[str, tuple[np.ndarray, list[str] | None, bool, np.ndarray]] = {}
    for name in names:
        having = [t for t in done if name in t.params]
        dist = having[0].distributions[name]
        x, labels, log = _param_axis(dist, [t.params[name] for t in having])
        y = np.array([t.value for t in having], dtype=float)
        axes[name] = (x, labels, log, y)
        fig, ax = plt.subplots(figsize=(5.2, 3.8))
        ax.scatter(x, y, c=y, cmap="viridis", edgecolor="k", s=36)
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=20)
        if log:
            ax.set_xscale("log")
        ax.set(xlabel=name, ylabel="validation accuracy", title=f"accuracy vs {name}")
        ax.grid(alpha=0.3)
        slug = name.replace(".", "_")
        _save(fig, out / f"param_{slug}.png")
        figures.append(_figure(f"param_{slug}.png", f"Validation accuracy vs {name}"))
    pair_names = [] if few else [
        n for n in names if all(n in t.params for t in done)][:MAX_PAIR_PARAMS]
    for a, b in itertools.combinations(pair_names, 2):
        xa, la, loga, _ = axes[a]
        xb, lb, logb, _ = axes[b]
        ea, eb = _bins(xa, la, loga), _bins(xb, lb, logb)
        total, _, _ = np.histogram2d(xa, xb, bins=(ea, eb), weights=values)
        count, _, _ = np.histogram2d(xa, xb, bins=(ea, eb))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / count, np.nan)
        fig, ax = plt.subplots(figsize=(5.4, 4.2))
        mesh = ax.pcolormesh(ea, eb, mean.T, cmap="viridis", shading="flat",
                             vmin=np.nanmin(values), vmax=np.nanmax(values))
        ax.scatter(xa, xb, c="white", edgecolor="k", s=14)
        fig.colorbar(mesh, ax=ax, label="mean validation accuracy")
        for labels, setter, log, axis in ((la, ax.set_xticks, loga, "x"),
                                          (lb, ax.set_yticks, logb, "y")):
            if labels is not None:
                setter(range(len(labels)), labels)
            elif log:
                getattr(ax, f"set_{axis}scale")("log")
        ax.set(xlabel=a, ylabel=b, title=f"{a} × {b}")
        slug = f"pair_{a.replace('.', '_')}__{b.replace('.', '_')}"
        _save(fig, out / f"{slug}.png")
        figures.append(_figure(f"{slug}.png", f"Mean validation accuracy over {a} and {b}"))
    runs = [(f"trial {t.number}", Path(t.user_attrs.get("run_dir", "")), t.value)
            for t in study.get_trials(deepcopy=False) if t.user_attrs.get("run_dir")]
    if _learning_curves(runs, out / "learning_curves.png", "Validation accuracy per trial"):
        figures.append(_figure("learning_curves.png",
                               "Learning curves (colour: final validation accuracy)"))
    return figures


def _sweep_page(folder: Path, out: Path, storage: str | None) -> str:
    from spikeforge.experiments.sweep import load_sweep, sweep_summary, trial_table

    study, record = load_sweep(folder, storage)
    rows = trial_table(study)
    summary = sweep_summary(study, folder)
    params = sorted({k for r in rows for k in r["params"]})
    complete = sorted([r for r in rows if r["state"] == "COMPLETE"], key=lambda r: -r["value"])
    best_rows = [[r["number"], r["value"], r["test_accuracy"], r["seconds"],
                  *[r["params"].get(p) for p in params]] for r in complete[:10]]
    parts = [f'<div class="headline">{len(rows)} trials: '
             f'{summary.get("n_complete", 0)} complete, {summary.get("n_pruned", 0)} pruned, '
             f'{summary.get("n_fail", 0)} failed, {summary.get("n_running", 0)} running.'
             + (f' Best: trial {summary["best_trial"]}, validation accuracy '
                f'{summary["best_val_accuracy"]:.4f}' if "best_trial" in summary else "")
             + "</div>"]
    headers = ["trial", "val acc", "test acc", "seconds", *params]
    parts += ["<h2>Best trials</h2>",
              _table(headers, best_rows, ["best"] + [""] * (len(best_rows) - 1))]
    parts += ["<h2>Figures</h2>", *_sweep_figures(study, out)]
    all_rows = [[r["number"], r["state"], r["value"], r["test_accuracy"],
                 *[r["params"].get(p) for p in params], "; ".join(r["errors"])] for r in rows]
    classes = ["failed" if r["state"] == "FAIL" else "" for r in rows]
    parts += ["<h2>All trials</h2>",
              _table(["trial", "state", "val acc", "test acc", *params, "errors (retried)"],
                     all_rows, classes)]
    meta = (f"sampler {record['sampler']}, pruner {record['pruner']}, seed {record['seed']}, "
            f"data {record['config']['data']['name']}, storage {record['storage']}, "
            f"written {time.strftime('%Y-%m-%d %H:%M')}")
    return _page(f"Sweep {folder.name}", meta, "\n".join(parts))


# -- cross-validation -----------------------------------------------------------------
def _cv_page(folder: Path, out: Path) -> str:
    from spikeforge.experiments.cv import RESULTS

    path = folder / RESULTS
    if not path.is_file():
        raise SpikeforgeError(f"{folder} has no {RESULTS} yet; run `spikeforge cv` to the end "
                              "first (re-running resumes it)")
    summary = json.loads(path.read_text())
    record = json.loads((folder / "cv.json").read_text())
    folds = summary["folds"]
    acc = np.array([f["accuracy"] for f in folds])
    mean, std = summary["mean_accuracy"], summary["std_accuracy"]
    labels = [f"{f['fold']}" + (f"\nspk {','.join(map(str, f['speakers']))}"
                                if f["speakers"] else "") for f in folds]
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(folds) + 2), 4))
    ax.bar(range(len(folds)), acc, color="#4c72b0")
    ax.axhline(mean, color="k", lw=1.5, label=f"mean {mean:.3f} ± {std:.3f}")
    ax.axhspan(mean - std, mean + std, color="k", alpha=0.1)
    ax.set_xticks(range(len(folds)), labels)
    ax.set(xlabel="fold", ylabel="held-out accuracy", ylim=(0, 1), title="Accuracy per fold")
    ax.legend(loc="lower right")
    _save(fig, out / "folds.png")
    figures = [_figure("folds.png", "Held-out accuracy per fold (line: mean ± std)")]
    per_speaker = summary["per_speaker"]
    if per_speaker:
        speakers = sorted(per_speaker, key=int)
        fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(speakers) + 2), 4))
        ax.bar(range(len(speakers)), [per_speaker[s]["accuracy"] for s in speakers],
               color="#55a868")
        ax.set_xticks(range(len(speakers)), speakers)
        ax.set(xlabel="speaker", ylabel="held-out accuracy", ylim=(0, 1),
               title="Accuracy per speaker")
        _save(fig, out / "speakers.png")
        figures.append(_figure("speakers.png", "Held-out accuracy per speaker"))
    confusion = np.array(summary["confusion"], dtype=float)
    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    n = confusion.shape[0]
    fig, ax = plt.subplots(figsize=(0.45 * n + 3, 0.45 * n + 2.5))
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    if n <= 20:
        for i, j in itertools.product(range(n), range(n)):
            if confusion[i, j]:
                ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="fraction of true class")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.tick_params(labelsize=7 if n > 12 else 9)
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion (held-out, pooled)")
    _save(fig, out / "confusion.png")
    figures.append(_figure("confusion.png", "Confusion matrix over all held-out samples"))
    runs = [(f"fold {f['fold']}", folder / "folds" / f"fold-{f['fold']:02d}", f["accuracy"])
            for f in folds]
    if _learning_curves(runs, out / "learning_curves.png", "Validation (held-out) accuracy"):
        figures.append(_figure("learning_curves.png", "Learning curves per fold"))
    headline = (f'<div class="headline">{summary["n_folds"]} folds ({record["folds"]}): '
                f"accuracy {mean:.4f} ± {std:.4f}")
    if "final_test_accuracy" in summary:
        headline += f'; final run test accuracy {summary["final_test_accuracy"]:.4f}'
    fold_rows = [[f["fold"], ", ".join(map(str, f["speakers"])) or "-", f["accuracy"],
                  f["n_held_out"], f["n_train"]] for f in folds]
    speaker_rows = [[s, per_speaker[s]["accuracy"], per_speaker[s]["n"]]
                    for s in sorted(per_speaker, key=int)]
    parts = [headline + "</div>", "<h2>Folds</h2>",
             _table(["fold", "held-out speakers", "accuracy", "n held out", "n train"],
                    fold_rows)]
    if speaker_rows:
        parts += ["<h2>Speakers</h2>", _table(["speaker", "accuracy", "n"], speaker_rows)]
    parts += ["<h2>Figures</h2>", *figures]
    meta = (f"data {record['config']['data']['name']}, seed {record['seed']}, "
            f"written {time.strftime('%Y-%m-%d %H:%M')}")
    return _page(f"Cross-validation {folder.name}", meta, "\n".join(parts))


def write_report(folder: Path, storage: str | None = None) -> Path:
    """Write ``folder/report/report.html`` (+ PNGs) for a sweep or CV folder; returns its
    path. The report folder is replaced as a whole, never left half-written."""
    folder = Path(folder)
    if (folder / "sweep.json").is_file():
        kind = "sweep"
    elif (folder / "cv.json").is_file():
        kind = "cv"
    else:
        raise SpikeforgeError(f"{folder} is neither a sweep nor a CV folder (no sweep.json or "
                              "cv.json); pass the --out folder of `spikeforge sweep`/`cv`")
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".report.staging-"))
    final = folder / REPORT_DIR
    try:
        page = _sweep_page(folder, staging, storage) if kind == "sweep" else _cv_page(
            folder, staging)
        (staging / REPORT_HTML).write_text(page)
        old = None
        if final.exists():
            old = folder / f".report.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final / REPORT_HTML
