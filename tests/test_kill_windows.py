"""Folders left by a kill in the middle of creating them are completed by the next run;
a coordinator that stops takes its workers with it; stored storage URLs hold no secret
and no absolute path to the folder's own store."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from spikeforge.atomic import TEMP_MARK
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments import cv
from spikeforge.experiments.config import load_config
from spikeforge.experiments.executors import LocalExecutor
from sweep_tasks import fake_objective, sleeper

optuna = pytest.importorskip("optuna", reason="sweeps need optuna: pip install spikeforge[sweep]")

from spikeforge.experiments.sweep import load_sweep, redact, run_sweep  # noqa: E402


def _record(**overrides) -> tuple[dict, object]:
    base = load_config(None, {"model.hidden": [8], **overrides})
    return {"config": base.model_dump(mode="json"), "folds": "2", "seed": 0, "n_folds": 2,
            "fold_sizes": [5, 5], "fold_speakers": [[], []]}, base


def test_cv_folder_killed_before_cv_json_is_completed_on_rerun(tmp_path):
    out = tmp_path / "cv"
    out.mkdir()
    record, base = _record()
    (out / cv.BASE_CONFIG).write_text("half")  # killed after base_config.yaml
    (out / f".{cv.CV_FILE}{TEMP_MARK}x.json").write_text("{")  # and inside cv.json's write
    cv._prepare_folder(out, record, base)
    assert json.loads((out / cv.CV_FILE).read_text())["n_folds"] == 2
    assert (out / cv.BASE_CONFIG).read_text().startswith("seed: 0")


def test_cv_resume_ignores_threads_and_data_dir_but_not_lr(tmp_path):
    out = tmp_path / "cv"
    record, base = _record()
    cv._prepare_folder(out, record, base)
    harmless, base2 = _record(**{"train.threads": 1, "data.download": False})
    cv._prepare_folder(out, harmless, base2)
    changed, base3 = _record(**{"train.lr": 0.3})
    with pytest.raises(SpikeforgeError, match="holds a different cross-validation"):
        cv._prepare_folder(out, changed, base3)


def test_cv_folder_with_foreign_files_is_refused(tmp_path):
    out = tmp_path / "cv"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    record, base = _record()
    with pytest.raises(SpikeforgeError, match="exists but is not a cross-validation"):
        cv._prepare_folder(out, record, base)


def _space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("train.lr: {low: 1.0e-4, high: 1.0, log: true}\n")
    return path


def test_sweep_folder_killed_during_creation_is_completed_on_rerun(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / ".sweep.json.new").write_text("{")  # killed between the write and the link
    (out / f"..sweep.json.new{TEMP_MARK}ab.new").write_text("")
    (out / "base_config.yaml").write_text("half")
    summary = run_sweep(None, _space(tmp_path), out, trials=2, sampler="random",
                        pruner="none", task=fake_objective)
    assert summary["n_complete"] == 2


def test_moved_sweep_folder_finds_its_store(tmp_path):
    out = tmp_path / "sweep"
    run_sweep(None, _space(tmp_path), out, trials=2, sampler="random", pruner="none",
              task=fake_objective)
    assert json.loads((out / "sweep.json").read_text())["storage"] == "sqlite:///study.db"
    moved = tmp_path / "elsewhere"
    shutil.move(out, moved)
    study, _ = load_sweep(moved)
    assert len(study.trials) == 2
    again = run_sweep(None, _space(tmp_path), moved, trials=2, sampler="random",
                      pruner="none", task=fake_objective)
    assert again["n_trials"] == 2


@pytest.mark.parametrize("url, shown", [
    ("postgresql://me:s3cret@db/x", "postgresql://me:***@db/x"),
    ("postgresql://me@db/x?password=s3cret&sslmode=require",
     "postgresql://me@db/x?password=***&sslmode=require"),
    ("mysql://db/x?user=me&PWD=s3cret", "mysql://db/x?user=me&PWD=***"),
    ("sqlite:///a/b.db", "sqlite:///a/b.db"),
])  # fmt: skip
def test_redact_hides_passwords_in_user_info_and_query(url, shown):
    assert redact(url) == shown
    assert "s3cret" not in redact(url)


def test_local_executor_close_stops_running_workers():
    pool = LocalExecutor(2)
    jobs = [pool.submit(sleeper, {"seconds": 60}) for _ in range(2)]
    time.sleep(0.5)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 15
    assert all(not job.process.is_alive() for job in jobs)
