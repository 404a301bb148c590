"""Cross-validation: fold construction (LOSO, grouped and stratified K-fold), bad input,
and leave-one-speaker-out on a synthetic SHD-format set with 4 training speakers,
killed between folds and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spikeforge.data.base import SpikeDataset
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.cv import make_folds, run_cv


def _dataset(n: int = 48, speakers: bool = True) -> SpikeDataset:
    rng = np.random.default_rng(0)
    samples = [(np.array([1, 2]), np.array([0, 1])) for _ in range(n)]
    labels = np.arange(n) % 3
    spk = rng.permutation(np.repeat(np.arange(4), n // 4)) if speakers else None
    return SpikeDataset(samples, labels, 2, 3, 5, 1.0, spk)


def test_loso_folds_are_speaker_disjoint_and_cover_everything():
    data = _dataset()
    folds = make_folds(data, "loso", seed=0)
    assert [f.speakers for f in folds] == [(0,), (1,), (2,), (3,)]
    held = np.concatenate([f.held_out for f in folds])
    assert np.array_equal(np.sort(held), np.arange(len(data)))
    for fold in folds:
        assert set(data.speakers[fold.held_out]) == set(fold.speakers)


def test_k_folds_group_speakers_or_stratify_classes():
    data = _dataset()
    folds = make_folds(data, "2", seed=0)
    assert len(folds) == 2
    assert set(folds[0].speakers).isdisjoint(folds[1].speakers)
    plain = _dataset(speakers=False)
    folds = make_folds(plain, "4", seed=3)
    assert len(folds) == 4
    for fold in folds:  # stratified: every class 4 times in each held-out part
        assert np.array_equal(np.bincount(plain.labels[fold.held_out], minlength=3), [4, 4, 4])
    again = make_folds(plain, "4", seed=3)
    assert all(np.array_equal(a.held_out, b.held_out) for a, b in zip(folds, again, strict=True))


@pytest.mark.parametrize("speakers, scheme, message", [
    (False, "loso", "--folds loso needs a dataset with speaker ids"),
    (True, "9", "only 4 speakers"),
    (False, "1", "K >= 2"),
    (False, "abc", "must be 'loso' or an integer"),
    (False, "17", "smallest class has only 16"),
])  # fmt: skip
def test_bad_fold_schemes_are_one_line_errors(speakers, scheme, message):
    with pytest.raises(SpikeforgeError, match=message):
        make_folds(_dataset(speakers=speakers), scheme, seed=0)


def test_cv_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "cv"
    with pytest.raises(SpikeforgeError, match="--folds loso needs a dataset with speaker ids"):
        run_cv(None, out, folds="loso")
    assert not out.exists()


# -- real training ---------------------------------------------------------------
def _shd_sets(folder: Path) -> list[str]:
    from spikeforge.data.synthetic_shd import synthesize_shd

    synthesize_shd(folder, n_train=64, n_test=24, n_classes=3, n_speakers=6,
                   n_test_speakers=2, n_channels=40, spikes_per_sample=60, duration_s=0.2)
    sets = {"data.name": "shd", "data.data_dir": str(folder), "data.n_channels": 40,
            "data.max_time_ms": 260, "data.dt": 4, "data.val_split": "random",
            "data.download": "false", "model.hidden": "[16]", "train.epochs": 1,
            "train.batch_size": 16}
    return [item for key, value in sets.items() for item in ("--set", f"{key}={value}")]


def test_loso_cv_on_synthetic_shd_resumes_after_kill_between_folds(tmp_path):
    pytest.importorskip("h5py", reason="SHD files need h5py")
    sets = _shd_sets(tmp_path / "shd")
    out = tmp_path / "cv"
    cmd = [sys.executable, "-m", "spikeforge.cli", "cv", "--folds", "loso", "--out", str(out),
           "--workers", "1", *sets]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first = out / "folds" / "fold-00" / "fold.json"
    deadline = time.time() + 900
    while not first.exists():
        assert time.time() < deadline and proc.poll() is None, "fold 0 never finished"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # coordinator and its worker, between folds
    proc.wait()
    assert not (out / "cv_results.json").exists()
    first_text, first_mtime = first.read_text(), first.stat().st_mtime
    done = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    assert "skipping 1 completed fold(s): fold-00" in done.stderr
    assert first.read_text() == first_text and first.stat().st_mtime == first_mtime
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["n_folds"] == 4
    assert [f["speakers"] for f in summary["folds"]] == [[0], [1], [2], [3]]
    accs = [f["accuracy"] for f in summary["folds"]]
    assert summary["mean_accuracy"] == pytest.approx(np.mean(accs))
    assert summary["std_accuracy"] == pytest.approx(np.std(accs, ddof=1))
    assert set(summary["per_speaker"]) == {"0", "1", "2", "3"}
    for fold in summary["folds"]:  # LOSO: a fold's accuracy is its speaker's accuracy
        spk = str(fold["speakers"][0])
        assert summary["per_speaker"][spk]["accuracy"] == pytest.approx(fold["accuracy"])
    assert sum(f["n_held_out"] for f in summary["folds"]) == sum(
        s["n"] for s in summary["per_speaker"].values())
    assert 0.0 <= summary["final_test_accuracy"] <= 1.0
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    assert f"accuracy: {summary['mean_accuracy']:.4f} ± {summary['std_accuracy']:.4f}" in text
    report = subprocess.run([sys.executable, "-m", "spikeforge.cli", "report", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr
    html = Path(report.stdout.strip().splitlines()[-1])
    assert {"folds.png", "speakers.png", "confusion.png"} <= {p.name for p in
                                                              html.parent.glob("*.png")}
