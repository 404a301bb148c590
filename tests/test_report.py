"""Reports: HTML + PNGs for a sweep and a CV folder, rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="sweeps need optuna: pip install spikeforge[sweep]")

from services import artifacts  # noqa: E402, F401
from spikeforge.errors import SpikeforgeError  # noqa: E402
from spikeforge.experiments.cv import summarise  # noqa: E402
from spikeforge.experiments.report import write_report  # noqa: E402
from spikeforge.experiments.sweep import STUDY_NAME  # noqa: E402


def check_in_browser(html: Path, screenshot: Path) -> None:
    """Open ``html`` in headless Chromium, screenshot it, and check the page really drew
    its figures (every <img> file exists; the screenshot is not blank)."""
    import matplotlib.image

    text = html.read_text()
    images = re.findall(r'<img src="([^"]+)"', text)
    assert images, "the report has no figures"
    for name in images:
        assert (html.parent / name).is_file(), name
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here (apt-get install -y chromium) to render the report")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1200,2400", f"--screenshot={screenshot}", html.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and screenshot.is_file(), proc.stderr[-2000:]
    pixels = matplotlib.image.imread(screenshot)[..., :3]
    not_white = np.mean(np.any(pixels < 0.9, axis=-1))
    colours = len(np.unique((pixels[::4, ::4] * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert not_white > 0.05, f"screenshot is nearly blank ({not_white:.3f} non-white)"
    assert colours > 50, "screenshot has no plots (too few colours)"


def _fake_sweep(folder: Path, n_trials: int = 12) -> None:
    """A sweep folder with ``n_trials`` finished trials (trial 7 failed; metrics for
    each) without training."""
    folder.mkdir()
    url = f"sqlite:///{folder / 'study.db'}"
    study = optuna.create_study(storage=url, study_name=STUDY_NAME, direction="maximize")
    dists = {"train.lr": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True),
             "model.hidden": optuna.distributions.CategoricalDistribution(["[8]", "[16]"])}
    rng = np.random.default_rng(0)
    for number in range(n_trials):
        lr, hidden = float(10 ** rng.uniform(-3, -1)), ["[8]", "[16]"][number % 2]
        value = 0.9 - abs(np.log10(lr) + 2) / 3
        run_dir = folder / "trials" / f"trial-{number:04d}"
        run_dir.mkdir(parents=True)
        rows = [{"epoch": e, "val_accuracy": value * e / 3, "train_loss": 1.0,
                 "val_loss": 1.0, "train_accuracy": 0.5} for e in (1, 2, 3)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        state = optuna.trial.TrialState.FAIL if number == 7 else optuna.trial.TrialState.COMPLETE
        attrs = {"run_dir": str(run_dir), "test_accuracy": value - 0.02,
                 "errors": ["WorkerDied: worker process 1 died (killed by SIGKILL)"]
                 if number == 3 else []}
        study.add_trial(optuna.trial.create_trial(
            params={"train.lr": lr, "model.hidden": hidden}, distributions=dists,
            value=None if state == optuna.trial.TrialState.FAIL else value, state=state,
            user_attrs=attrs))
    record = {"config": {"data": {"name": "digits"}}, "space": {}, "sampler": "random",
              "pruner": "none", "seed": 0, "study_name": STUDY_NAME, "storage": url}
    (folder / "sweep.json").write_text(json.dumps(record))


def test_sweep_report_renders(tmp_path, artifacts):  # noqa: F811
    folder = tmp_path / "sweep"
    _fake_sweep(folder)
    html = write_report(folder)
    text = html.read_text()
    assert "12 trials: 11 complete, 0 pruned, 1 failed" in text
    assert "caveat" not in text
    assert "killed by SIGKILL" in text
    names = {p.name for p in html.parent.glob("*.png")}
    assert {"importance.png", "param_train_lr.png", "param_model_hidden.png",
            "pair_model_hidden__train_lr.png", "learning_curves.png"} <= names
    best = re.search(r'<tr class="best"><td>(\d+)</td><td>([\d.]+)</td>', text)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{folder}/study.db")
    assert int(best.group(1)) == study.best_trial.number
    assert float(best.group(2)) == pytest.approx(study.best_value, abs=1e-4)
    check_in_browser(html, artifacts / "sweep_report.png")
    assert not list(folder.glob(".report*"))  # no staging folder left behind


def test_sweep_report_with_few_trials_has_a_caveat_instead_of_importance(tmp_path):
    folder = tmp_path / "sweep"
    _fake_sweep(folder, n_trials=3)
    html = write_report(folder)
    text = html.read_text()
    assert "Only 3 completed trial(s)" in text
    names = {p.name for p in html.parent.glob("*.png")}
    assert "importance.png" not in names and not any(n.startswith("pair_") for n in names)
    assert {"param_train_lr.png", "learning_curves.png"} <= names


def test_integer_epoch_axis_ticks_whole_epochs_and_widens_a_single_epoch():
    import matplotlib.pyplot as plt

    from spikeforge.experiments.plot_axes import integer_epoch_axis

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [0.2, 0.5, 0.7])
    integer_epoch_axis(ax, [1, 2, 3])
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    fig2, ax2 = plt.subplots()
    ax2.plot([1], [0.5])
    integer_epoch_axis(ax2, [1])
    assert ax2.get_xlim() == (0.0, 2.0)
    plt.close(fig)
    plt.close(fig2)


def test_cv_report_renders(tmp_path, artifacts):  # noqa: F811
    folder = tmp_path / "cv"
    folder.mkdir()
    rng = np.random.default_rng(1)
    records = []
    for fold in range(4):
        labels = rng.integers(0, 4, 20)
        predictions = np.where(rng.random(20) < 0.6 + 0.1 * fold, labels, (labels + 1) % 4)
        records.append({"fold": fold, "held_out_speakers": [fold], "n_train": 60,
                        "n_held_out": 20, "accuracy": float(np.mean(predictions == labels)),
                        "predictions": predictions.tolist(), "labels": labels.tolist(),
                        "speakers": [fold] * 20})
    summary = summarise(folder, records, 4)
    accs = [r["accuracy"] for r in records]
    assert summary["mean_accuracy"] == pytest.approx(np.mean(accs))
    assert summary["std_accuracy"] == pytest.approx(np.std(accs, ddof=1))
    assert summary["per_speaker"]["2"]["accuracy"] == pytest.approx(accs[2])
    assert np.sum(summary["confusion"]) == 80
    assert np.trace(summary["confusion"]) == sum(round(a * 20) for a in accs)
    (folder / "cv_results.json").write_text(json.dumps(summary))
    (folder / "cv.json").write_text(json.dumps({"config": {"data": {"name": "shd"}},
                                                "folds": "loso", "seed": 0}))
    html = write_report(folder)
    text = html.read_text()
    assert f"accuracy {summary['mean_accuracy']:.4f} ± {summary['std_accuracy']:.4f}" in text
    assert {"folds.png", "speakers.png", "confusion.png"} <= {p.name for p in
                                                              html.parent.glob("*.png")}
    check_in_browser(html, artifacts / "cv_report.png")


def test_report_of_unknown_folder_is_one_line_error(tmp_path):
    with pytest.raises(SpikeforgeError, match="neither a sweep nor a CV folder"):
        write_report(tmp_path)
