"""Sweeps: search-space validation, executors, the coordinator's retry/resume logic (with a
cheap objective, locally and on Dask), kill -9 of the coordinator (SQLite and PostgreSQL)
and of a worker mid-trial, bad input, real training sweeps on PostgreSQL and SLURM, and
(slow) a 12-trial local-vs-Dask comparison with the report in a browser."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="sweeps need optuna: pip install spikeforge[sweep]")

from services import artifacts, postgres_server, postgres_url, slurm_cluster  # noqa: E402, F401
from spikeforge.errors import SpikeforgeError  # noqa: E402
from spikeforge.experiments.executors import LocalExecutor  # noqa: E402
from spikeforge.experiments.space import parse_space  # noqa: E402
from spikeforge.experiments.sweep import (  # noqa: E402
    load_sweep,
    open_storage,
    run_sweep,
    trial_table,
)
from sweep_tasks import (  # noqa: E402
    always_failing,
    crashing_objective,
    fake_objective,
    sleeper,
)

TINY = {"train.epochs": 1, "model.hidden": [8], "train.batch_size": 64}


def run_cli(*args, check=True, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


# -- search space ---------------------------------------------------------------------
def test_space_distributions_and_grid():
    space = parse_space({
        "train.lr": {"low": 1e-4, "high": 1e-1, "log": True, "grid": 4},
        "train.batch_size": {"low": 16, "high": 64, "step": 16},
        "model.hidden": {"choices": [[32], [64, 64]]},
        "model.recurrent": [False, True],
    })  # fmt: skip
    dists = space.distributions()
    assert isinstance(dists["train.lr"], optuna.distributions.FloatDistribution)
    assert dists["train.lr"].log
    assert isinstance(dists["train.batch_size"], optuna.distributions.IntDistribution)
    grid = space.grid()
    assert grid["train.batch_size"] == [16, 32, 48, 64]
    assert grid["train.lr"] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert grid["model.hidden"] == ["[32]", "[64, 64]"]
    assert space.grid_size() == 4 * 4 * 2 * 2
    overrides = space.overrides({"model.hidden": "[64, 64]", "train.lr": 0.01})
    assert overrides == {"model.hidden": [64, 64], "train.lr": 0.01}


@pytest.mark.parametrize("tree, message", [
    ({"train.lrr": {"low": 0.1, "high": 1}}, "unknown config path 'train.lrr'"),
    ({"lr": {"low": 0.1, "high": 1}}, "did you mean train.lr"),
    ({"train.lr": {"low": 0.1, "high": 0.1}}, "empty range"),
    ({"train.lr": {"low": 0.5, "high": 0.1}}, "empty range"),
    ({"train.lr": {"choices": []}}, "empty list of choices"),
    ({"train.lr": {"low": 0.0, "high": 0.1, "log": True}}, "log scale, so low must be > 0"),
    ({"train.epochs": {"low": 0, "high": 3}}, "train.epochs=0 is not allowed"),
    ({"train.loss": ["sum", "nosuch"]}, "train.loss='nosuch' is not allowed"),
    ({"train.lr": {"low": 0.1}}, "needs 'low' and 'high'"),
    ({}, "non-empty mapping"),
])  # fmt: skip
def test_space_errors_are_one_line(tree, message):
    with pytest.raises(SpikeforgeError) as info:
        parse_space(tree)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_swept_path_also_fixed_by_set_is_refused():
    with pytest.raises(SpikeforgeError, match=r"model.hidden is swept here and also fixed by"):
        parse_space({"model.hidden": [[8], [16]]}, base_overrides={"model.hidden": [8]})


def test_grid_sampler_needs_finite_values():
    space = parse_space({"train.lr": {"low": 1e-3, "high": 1e-1}})
    with pytest.raises(SpikeforgeError, match="grid sampler needs finite values for train.lr"):
        space.grid()


# -- executors ------------------------------------------------------------------------
def _wait(job, timeout=60):
    deadline = time.time() + timeout
    while not job.done():
        assert time.time() < deadline, "job did not finish"
        time.sleep(0.05)
    return job.outcome()


def test_local_executor_reports_results_errors_and_killed_workers():
    pool = LocalExecutor(3)
    ok = pool.submit(sleeper, {"seconds": 0.1})
    bad = pool.submit(always_failing, {})
    victim = pool.submit(sleeper, {"seconds": 60})
    time.sleep(1.0)
    os.kill(victim.process.pid, signal.SIGKILL)
    assert _wait(ok) == (True, {"slept": 0.1})
    status, text = _wait(bad)
    assert not status and text.startswith("ValueError: this trial can never work")
    status, text = _wait(victim)
    assert not status and "killed by SIGKILL" in text


# -- coordinator with a cheap objective -----------------------------------------------
def _space_file(tmp_path, text="train.lr: {low: 1.0e-4, high: 1.0, log: true}\n"
                               "model.hidden: [[8], [16]]\n"):
    path = tmp_path / f"space-{len(list(tmp_path.glob('space-*.yaml')))}.yaml"
    path.write_text(text)
    return path


def test_sweep_retries_failed_trials_and_resumes_without_duplicates(tmp_path):
    space = _space_file(tmp_path)
    out = tmp_path / "sweep"
    summary = run_sweep(None, space, out, trials=3, sampler="random", workers=2,
                        pruner="none", max_retries=2, task=crashing_objective)
    assert summary["n_trials"] == 3 and summary["n_complete"] == 3
    study, _ = load_sweep(out)
    rows = {r["number"]: r for r in trial_table(study)}
    assert rows[1]["errors"] == [rows[1]["errors"][0]]
    assert "killed by SIGKILL" in rows[1]["errors"][0]
    assert rows[2]["errors"] == ["RuntimeError: simulated failure 1"]
    assert rows[0]["errors"] == []
    for number, row in rows.items():
        lr, hidden = row["params"]["train.lr"], row["params"]["model.hidden"][0]
        assert row["value"] == pytest.approx(1.0 - abs(math.log10(lr) + 2.0) / 4.0
                                             - 0.001 * hidden), number
    # list choices come back as lists (Optuna stores their JSON text)
    assert summary["best_params"]["model.hidden"] in ([8], [16])
    assert json.loads((out / "summary.json").read_text())["best_params"] == summary["best_params"]
    # the same command again: nothing re-runs, nothing is added
    before = {n: (out / "trials" / f"trial-{n:04d}" / "attempts.txt").read_text()
              for n in rows}
    again = run_sweep(None, space, out, trials=3, sampler="random", workers=2, pruner="none",
                      task=crashing_objective)
    assert again["n_trials"] == 3 and again["best_trial"] == summary["best_trial"]
    for n in rows:
        assert (out / "trials" / f"trial-{n:04d}" / "attempts.txt").read_text() == before[n]
    # asking for more trials continues the same study
    more = run_sweep(None, space, out, trials=4, sampler="random", workers=2, pruner="none",
                     task=fake_objective)
    assert more["n_trials"] == 4 and more["n_complete"] == 4


def test_grid_sweep_over_the_whole_grid_and_a_resumed_random_sweep(tmp_path):
    """The grid sampler finishes its grid without Optuna's study.stop() traceback; a
    resumed random sweep draws new values instead of repeating the first trials'."""
    grid_space = tmp_path / "grid.yaml"
    grid_space.write_text("train.lr: {choices: [0.001, 0.01]}\n")
    summary = run_sweep(None, grid_space, tmp_path / "grid", trials=2, sampler="grid",
                        workers=1, pruner="none", task=fake_objective)
    assert summary["n_complete"] == 2
    study, _ = load_sweep(tmp_path / "grid")
    assert sorted(r["params"]["train.lr"] for r in trial_table(study)) == [0.001, 0.01]
    space, out = _space_file(tmp_path), tmp_path / "random"
    run_sweep(None, space, out, trials=2, sampler="random", workers=1, pruner="none",
              task=fake_objective)
    run_sweep(None, space, out, trials=4, sampler="random", workers=1, pruner="none",
              task=fake_objective)
    study, _ = load_sweep(out)
    lrs = [r["params"]["train.lr"] for r in sorted(trial_table(study), key=lambda r: r["number"])]
    assert len(set(lrs)) == 4, lrs


@pytest.mark.parametrize("sampler", ["random", "grid"])
def test_adopted_trial_without_parameters_gets_them_before_it_runs(tmp_path, sampler):
    """A coordinator killed inside ``study.ask`` leaves a RUNNING trial with no stored
    parameters; the next coordinator samples them instead of training the base config."""
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {choices: [0.001, 0.01]}\n")
    out = tmp_path / "sweep"
    run_sweep(None, space, out, trials=1, sampler=sampler, workers=1, pruner="none",
              task=fake_objective)
    study, _ = load_sweep(out)
    study.ask()  # what the killed coordinator stored: a trial, no parameters, no owner
    summary = run_sweep(None, space, out, trials=2, sampler=sampler, workers=1,
                        pruner="none", task=fake_objective)
    assert summary["n_complete"] == 2
    rows = sorted(trial_table(study), key=lambda r: r["number"])
    assert [sorted(r["params"]) for r in rows] == [["train.lr"], ["train.lr"]]
    if sampler == "grid":
        assert sorted(r["params"]["train.lr"] for r in rows) == [0.001, 0.01]


def test_resumed_sweep_removes_a_killed_writers_temporary_files(tmp_path):
    out = tmp_path / "sweep"
    run_sweep(None, _space_file(tmp_path), out, trials=1, sampler="random", pruner="none",
              task=fake_objective)
    stale = [out / ".summary.json.tmp-k1ll3d.json", out / ".base_config.yaml.tmp-x.yaml",
             out / "..sweep.json.new.tmp-y.new"]
    for path in stale:
        path.write_text("half")
    run_sweep(None, _space_file(tmp_path), out, trials=1, sampler="random", pruner="none",
              task=fake_objective)
    assert [p for p in stale if p.exists()] == []
    assert json.loads((out / "summary.json").read_text())["n_complete"] == 1


def test_trial_failing_every_retry_is_recorded_as_failed(tmp_path):
    out = tmp_path / "sweep"
    summary = run_sweep(None, _space_file(tmp_path), out, trials=1, sampler="random",
                        pruner="none", max_retries=1, task=always_failing)
    assert summary["n_fail"] == 1
    study, _ = load_sweep(out)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["errors"] == ["ValueError: this trial can never work"] * 2
    assert "Traceback" in trial.user_attrs["error"]


COORDINATOR = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from sweep_tasks import slow_objective
from spikeforge.experiments.sweep import run_sweep

if __name__ == "__main__":
    run_sweep(None, Path({space!r}), Path({out!r}), trials=3, sampler="random", workers=2,
              pruner="none", task=slow_objective, storage={storage!r})
"""


def _kill_coordinator_and_resume(tmp_path, storage=None):
    """Kill -9 a coordinator after its first completed trial, resume with the same
    command; no completed trial is lost or run again, nothing is duplicated."""
    space, out = _space_file(tmp_path), tmp_path / "sweep"
    script = tmp_path / "coordinator.py"
    script.write_text(COORDINATOR.format(tests=str(Path(__file__).parent), space=str(space),
                                         out=str(out), storage=storage))
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    study = None
    while time.time() < deadline:
        try:
            study, _ = load_sweep(out, storage)
        except (SpikeforgeError, KeyError):  # not created yet
            study = None
        if study and study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # the coordinator only; its workers must notice
    proc.wait()
    study, _ = load_sweep(out, storage)
    complete_before = {t.number: t.value for t in study.trials
                       if t.state == optuna.trial.TrialState.COMPLETE}
    assert complete_before, "no trial completed before the kill"
    summary = run_sweep(None, space, out, trials=3, sampler="random", workers=2,
                        pruner="none", task=fake_objective, storage=storage)
    assert summary["n_trials"] == 3 and summary["n_complete"] == 3
    study, _ = load_sweep(out, storage)
    assert sorted(t.number for t in study.trials) == [0, 1, 2]
    after = {t.number: t.value for t in study.trials}
    for number, value in complete_before.items():
        assert after[number] == value
        attempts = (out / "trials" / f"trial-{number:04d}" / "attempts.txt").read_text()
        assert len(attempts.split()) == 1, "a completed trial was run again"


def test_coordinator_kill9_loses_no_completed_trial(tmp_path):
    _kill_coordinator_and_resume(tmp_path)


def test_coordinator_kill9_on_postgresql_loses_no_completed_trial(tmp_path, postgres_url):  # noqa: F811
    _kill_coordinator_and_resume(tmp_path, postgres_url)


def test_dask_sweep_retries_a_killed_worker(tmp_path):
    """A Dask LocalCluster: trial 1's worker is killed (SIGKILL) once and trial 2 raises
    once; both are recorded and retried, all three complete."""
    pytest.importorskip("distributed", reason="the dask executor needs dask[distributed]")
    out = tmp_path / "sweep"
    summary = run_sweep(None, _space_file(tmp_path), out, trials=3, sampler="random",
                        workers=2, executor="dask", pruner="none", max_retries=2,
                        task=crashing_objective)
    assert summary["n_complete"] == 3
    rows = {r["number"]: r for r in trial_table(load_sweep(out)[0])}
    assert len(rows[1]["errors"]) == 1 and rows[2]["errors"] == [
        "RuntimeError: simulated failure 1"]
    assert rows[0]["errors"] == []
    for row in rows.values():
        lr, hidden = row["params"]["train.lr"], row["params"]["model.hidden"][0]
        assert row["value"] == pytest.approx(1.0 - abs(math.log10(lr) + 2.0) / 4.0
                                             - 0.001 * hidden)


# -- bad input (CLI: one line, exit 2, nothing written) -------------------------------
def _main_in_process(monkeypatch, capsys, *args):
    from spikeforge import cli

    monkeypatch.setattr(sys, "argv", ["spikeforge", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    return info.value.code, capsys.readouterr().err


def test_cli_bad_input_is_one_line_before_work(tmp_path, monkeypatch, capsys):
    bad_path = _space_file(tmp_path, "train.nosuch: {low: 1, high: 2}\n")
    out = tmp_path / "never"
    proc = run_cli("sweep", "--space", str(bad_path), "--out", str(out), check=False)
    assert proc.returncode == 2
    assert "unknown config path 'train.nosuch'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    cases = [
        (["--space", str(_space_file(tmp_path, "train.lr: {low: 0.1, high: 0.01}\n"))],
         "empty range"),
        (["--space", str(_space_file(tmp_path)), "--storage",
          "postgresql://nobody:secret@127.0.0.1:9/none"], "cannot open sweep storage"),
        (["--space", str(_space_file(tmp_path)), "--executor", "nosuch"], "unknown executor"),
        (["--space", str(_space_file(tmp_path)), "--sampler", "grid"],
         "grid sampler needs finite values for train.lr"),
        (["--space", str(tmp_path / "missing.yaml")], "cannot read search space"),
    ]
    for args, message in cases:
        code, err = _main_in_process(monkeypatch, capsys, "sweep", *args, "--out", str(out))
        assert code == 2, err
        assert message in err
        assert "secret" not in err
        assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


# -- real training (slow) -------------------------------------------------------------
def _sweep_args(space, out, *extra, swept=()):
    """CLI arguments of a tiny sweep; TINY's settings of the ``swept`` paths are left out
    (a path may not be both swept and fixed with --set)."""
    sets = [item for key, value in TINY.items() if key not in swept
            for item in ("--set", f"{key}={value}")]
    return ["sweep", "--space", str(space), "--out", str(out), *sets, "--json", *extra]


@pytest.mark.slow
def test_12_trial_sweep_local_and_dask_agree_and_report_renders(tmp_path, artifacts):  # noqa: F811
    space = _space_file(tmp_path, "train.lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n"
                                  "model.tau_mem: {low: 10.0, high: 30.0}\n"
                                  "model.hidden: [[8], [16]]\n")
    common = ["--trials", "12", "--sampler", "random", "--workers", "2", "--pruner", "none"]
    swept = ("model.hidden",)
    local = json.loads(run_cli(*_sweep_args(space, tmp_path / "local", *common, swept=swept)
                               ).stdout.splitlines()[-1])
    dask = json.loads(run_cli(*_sweep_args(space, tmp_path / "dask", *common, "--executor",
                                           "dask", swept=swept)).stdout.splitlines()[-1])
    assert local["n_complete"] == 12 and dask["n_complete"] == 12
    rows_local = trial_table(load_sweep(tmp_path / "local")[0])
    rows_dask = trial_table(load_sweep(tmp_path / "dask")[0])
    for a, b in zip(rows_local, rows_dask, strict=True):
        assert a["params"] == b["params"]
        assert a["value"] == b["value"], (a, b)
        assert a["test_accuracy"] == b["test_accuracy"]
    assert max(r["value"] for r in rows_local) > 0.3  # chance is 0.1
    html = Path(run_cli("report", str(tmp_path / "local")).stdout.strip().splitlines()[-1])
    from test_report import check_in_browser

    check_in_browser(html, artifacts / "sweep_report.png")


def test_kill9_worker_mid_trial_is_recorded_retried_and_resumed(tmp_path):
    space = _space_file(tmp_path, "train.lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n")
    out = tmp_path / "sweep"
    args = _sweep_args(space, out, "--trials", "2", "--sampler", "random", "--workers", "1",
                       "--pruner", "none", "--set", "train.epochs=2")
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "trials" / "trial-0001" / "metrics.jsonl"
    checkpoint = metrics.parent / "checkpoint.pt"  # written after epoch 1's metrics row
    deadline = time.time() + 600
    while not checkpoint.exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    log = (out / "logs" / "trial-0001.log").read_text()
    pid = int(log.split(" pid ")[-1].split()[0])
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["n_complete"] == 2
    study, _ = load_sweep(out)
    rows = {r["number"]: r for r in trial_table(study)}
    assert len(rows[1]["errors"]) == 1 and "killed by SIGKILL" in rows[1]["errors"][0]
    assert rows[0]["errors"] == []
    # the retry resumed from the checkpoint: epochs 1..2 once each, after a second attempt
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == [1, 2]
    assert "resuming" in (out / "logs" / "trial-0001.log").read_text()


def test_sweep_on_postgresql(tmp_path, postgres_url):  # noqa: F811
    space = _space_file(tmp_path, "train.lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n")
    out = tmp_path / "sweep"
    args = _sweep_args(space, out, "--trials", "1", "--sampler", "random", "--pruner", "none",
                       "--storage", postgres_url)
    summary = json.loads(run_cli(*args).stdout.splitlines()[-1])
    assert summary["n_complete"] == 1
    study = optuna.load_study(study_name="spikeforge-sweep", storage=open_storage(postgres_url))
    assert len(study.trials) == 1 and all(t.value is not None for t in study.trials)
    again = json.loads(run_cli(*args).stdout.splitlines()[-1])
    assert again["n_trials"] == 1  # resumed from PostgreSQL, nothing duplicated


def test_slurm_rejected_option_is_one_line_error(tmp_path, slurm_cluster):  # noqa: F811
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("slurm:\n  partition: nosuchpartition\n")
    out = tmp_path / "never"
    proc = run_cli("sweep", "--space", str(_space_file(tmp_path)), "--out", str(out),
                   "--executor", "slurm", "--cluster", str(cluster), check=False)
    assert proc.returncode == 2
    assert "SLURM rejected the job options" in proc.stderr
    assert "partition" in proc.stderr.lower()
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_sweep_on_slurm(tmp_path, slurm_cluster):  # noqa: F811
    space = _space_file(tmp_path, "train.lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(f"slurm:\n  partition: {slurm_cluster['partition']}\n"
                       "  time: '00:20:00'\n  memory_per_trial: 1GB\n")
    out = tmp_path / "sweep"
    args = _sweep_args(space, out, "--trials", "2", "--sampler", "random", "--pruner", "none",
                       "--workers", "1", "--executor", "slurm", "--cluster", str(cluster))
    summary = json.loads(run_cli(*args).stdout.splitlines()[-1])
    assert summary["n_complete"] == 2
    assert list((out / "slurm-logs").iterdir()), "no SLURM job ran"


def test_run_trial_reports_each_epoch_and_prunes_bad_trials(tmp_path, monkeypatch):
    from spikeforge.experiments import runner
    from spikeforge.experiments.config import RunConfig
    from spikeforge.experiments.sweep import STUDY_NAME, _pruner, run_trial

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name=STUDY_NAME, direction="maximize",
                                pruner=_pruner("median"))
    for value in (0.80, 0.85, 0.90, 0.95):  # the pruner's 4 start-up trials
        done = study.ask()
        for epoch in (1, 2, 3):
            done.report(value, epoch)
        study.tell(done, value)
    curves = {}

    def fake_train_run(config, out, console=None, on_epoch=None, splits=None):
        for epoch, accuracy in enumerate(curves["now"], start=1):
            on_epoch({"epoch": epoch, "val_accuracy": accuracy})
        return {"val_accuracy": curves["now"][-1], "test_accuracy": 0.5}

    monkeypatch.setattr(runner, "train_run", fake_train_run)

    def payload(trial):
        return {"config": RunConfig().model_dump(mode="json"), "storage": url,
                "run_dir": str(tmp_path / f"t{trial.number}"), "study_name": STUDY_NAME,
                "log": str(tmp_path / f"t{trial.number}.log"), "trial_id": trial._trial_id,
                "prune": True, "pruner": "median", "threads": None}

    bad = study.ask()
    curves["now"] = [0.2, 0.3, 0.4]
    assert run_trial(payload(bad)) == {"state": "pruned", "epoch": 1, "val_accuracy": 0.2}
    assert study.trials[bad.number].intermediate_values == {1: 0.2}
    good = study.ask()
    curves["now"] = [0.9, 0.95, 0.99]
    result = run_trial(payload(good))
    assert result["state"] == "complete" and result["val_accuracy"] == 0.99
    assert study.trials[good.number].intermediate_values == {1: 0.9, 2: 0.95, 3: 0.99}
    assert study.trials[good.number].user_attrs["worker_heartbeat"]["pid"] == os.getpid()


def test_trial_is_adopted_only_when_its_coordinator_and_its_worker_are_both_gone(tmp_path):
    """A remote (Dask/SLURM) worker may outlive its coordinator: its heartbeat on the trial
    keeps a restarted coordinator from running the same trial a second time beside it."""
    import socket

    from spikeforge.experiments.sweep import STALE_S, STUDY_NAME, WorkerHeartbeat, _Owner

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}",
                                study_name=STUDY_NAME, direction="maximize")
    trial = study.ask()
    me = _Owner(study)
    me.beat(force=True)

    def orphan() -> bool:
        return me.is_orphan(study.trials[trial.number])

    trial.set_user_attr("owner", me.name)
    assert not orphan()  # its coordinator (this process) is alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    trial.set_user_attr("owner", f"{socket.gethostname()}:{dead}:abcdef")
    assert orphan()  # its coordinator is gone and no worker ever beat
    with WorkerHeartbeat(study, trial._trial_id, every_s=0.05):
        first = study.trials[trial.number].user_attrs["worker_heartbeat"]
        time.sleep(0.5)
        assert not orphan()  # the worker still runs it
        beat = study.trials[trial.number].user_attrs["worker_heartbeat"]
        assert beat["time"] > first["time"] and beat["pid"] == os.getpid()
    remote = {"host": "node-17", "pid": 1, "time": time.time()}
    trial.set_user_attr("worker_heartbeat", remote)
    assert not orphan()  # a worker on another node beat just now
    trial.set_user_attr("worker_heartbeat", {**remote, "time": time.time() - STALE_S - 1})
    assert orphan()  # ... and then went silent
    trial.set_user_attr("worker_heartbeat", {"host": socket.gethostname(), "pid": int(dead),
                                             "time": time.time()})
    assert orphan()  # a fresh beat of a worker of this host whose process is gone
