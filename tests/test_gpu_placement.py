"""One GPU per trial/fold without a GPU: fake GPUs by setting CUDA_VISIBLE_DEVICES in the
coordinator and check what each worker saw (local processes, Dask resources, packed SLURM
workers), the SLURM job script's GPU request, and bad GPU requests.

The trial functions below run in spawned workers, so this module keeps its top-level
imports light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


# -- jobs run by workers ----------------------------------------------------------------
def recording_objective(payload):
    """A sweep trial that records the CUDA_VISIBLE_DEVICES it saw and when it ran."""
    start = time.time()
    time.sleep(payload.get("seconds", 0.4))
    run_dir = Path(payload["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    seen = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start,
            "end": time.time(), "pid": os.getpid()}
    (run_dir / "seen.json").write_text(json.dumps(seen))
    lr = payload["params"]["train.lr"]
    return {"state": "complete", "val_accuracy": lr, "test_accuracy": lr}


def recording_job(payload):
    """A Dask/CV job that returns what it saw: environment, device, thread, times."""
    start = time.time()
    time.sleep(payload.get("seconds", 0.6))
    return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device": payload["config"]["train"]["device"], "start": start,
            "end": time.time(), "worker": f"{os.getpid()}", "accuracy": 0.5}


def _overlapping(records):
    """Pairs of records whose [start, end] intervals overlap."""
    return [(a, b) for i, a in enumerate(records) for b in records[i + 1:]
            if a["start"] < b["end"] and b["start"] < a["end"]]


def _most_at_once(records) -> int:
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records],
                    key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


# -- parsing and planning ---------------------------------------------------------------
def test_visible_gpus_follow_cuda_rules():
    from spikeforge.experiments.executors import visible_gpus

    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == ["0", "1", "2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": " 4, 6"}) == ["4", "6"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8f2a,MIG-11"}) == ["GPU-8f2a", "MIG-11"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == ["0"]  # ends at -1
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1,1"}) == ["1"]


def test_gpu_groups_choices_and_errors(tmp_path, monkeypatch):
    from spikeforge.errors import SpikeforgeError
    from spikeforge.experiments.executors import gpu_groups, make_executor

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    pool = make_executor("local", 2, tmp_path)  # no GPU visible: no placement at all
    assert pool.gpus_per_trial == 0 and pool.groups == []

    four = ["4", "5", "6", "7"]
    assert gpu_groups("auto", None, four) == [("4",), ("5",), ("6",), ("7",)]
    assert gpu_groups("auto", 2, four) == [("4", "5"), ("6", "7")]
    assert gpu_groups("auto", 3, four) == [("4", "5", "6")]
    assert gpu_groups("2", None, four) == [("4",), ("5",)]
    assert gpu_groups("1,3", None, four) == [("5",), ("7",)]  # indices of the visible list
    assert gpu_groups("2,", None, four) == [("6",)]
    assert gpu_groups("none", None, four) == []
    assert gpu_groups("auto", 0, four) == []
    assert gpu_groups("auto", None, []) == []  # no GPU: nothing changes
    for spec, per, visible, message in [
        ("5", None, four, "--gpus 5: only 4 GPU"),
        ("0,4", None, four, "distinct indices below 4"),
        ("1,1", None, four, "distinct indices"),
        ("x", None, four, "use auto, none, a count N"),
        ("auto", 5, four, "--gpus-per-trial 5: only 4 GPU"),
        ("auto", 1, [], "none is visible"),
        ("2", None, [], "--gpus 2: only 0 GPU"),
    ]:
        with pytest.raises(SpikeforgeError, match=message):
            gpu_groups(spec, per, visible)


def test_device_index_beyond_a_trials_gpus_is_refused():
    from spikeforge.errors import SpikeforgeError
    from spikeforge.experiments.executors import check_device_for_placement

    check_device_for_placement("cuda:0", 1)
    check_device_for_placement("cuda:3", 0)  # no placement: the device is the user's
    with pytest.raises(SpikeforgeError, match=r"train.device=cuda:1, but each trial/fold"):
        check_device_for_placement("cuda:1", 1)


# -- local workers ----------------------------------------------------------------------
def test_local_sweep_gives_each_worker_its_own_gpu(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from spikeforge.experiments.sweep import load_sweep, run_sweep, trial_table

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n")
    out = tmp_path / "sweep"
    # 2 workers, 4 trials: the second pair must get the GPUs the first pair gave back
    summary = run_sweep(None, space, out, trials=4, sampler="random", pruner="none",
                        workers=2, task=recording_objective, gpus="2")
    assert summary["n_complete"] == 4
    study, _ = load_sweep(out)
    rows = trial_table(study)
    seen = []
    for row in rows:
        record = json.loads((Path(row["run_dir"]) / "seen.json").read_text())
        assert record["cuda_visible_devices"] in {"0", "1"}  # exactly one id
        placement = row["placement"]  # what the worker recorded about itself
        assert placement["cuda_visible_devices"] == record["cuda_visible_devices"]
        assert placement["gpus"] == [record["cuda_visible_devices"]]
        assert placement["device"] == "auto"  # one GPU visible: nothing to choose
        seen.append(record)
    assert sorted(r["cuda_visible_devices"] for r in seen) == ["0", "0", "1", "1"]
    for a, b in _overlapping(seen):  # trials running at the same time: different GPUs
        assert a["cuda_visible_devices"] != b["cuda_visible_devices"]


def test_cpu_folds_get_no_gpu_and_gpu_folds_share_when_workers_exceed_gpus(tmp_path,
                                                                           monkeypatch):
    from rich.console import Console

    from spikeforge.experiments.cv import run_jobs
    from spikeforge.experiments.executors import make_executor

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    pool = make_executor("local", 3, tmp_path, gpus="1,")  # only visible GPU 1 (= id 3)
    assert pool.groups == [("3",)]
    jobs = {"cpu": (recording_job, {"config": {"train": {"device": "cpu"}}, "seconds": 0.1,
                                    "gpus_per_trial": 0, "label": "cpu"})}
    jobs.update({f"g{i}": (recording_job, {"config": {"train": {"device": "cuda"}},
                                           "seconds": 0.1, "gpus_per_trial": 1,
                                           "label": f"g{i}"}) for i in range(2)})
    try:
        results = run_jobs(pool, jobs, tmp_path / "errors.json", 0,
                           Console(quiet=True), "cv")
    finally:
        pool.close()
    assert results["cpu"]["cuda_visible_devices"] == "2,3"  # not placed
    assert [results[f"g{i}"]["cuda_visible_devices"] for i in range(2)] == ["3", "3"]
    assert results["g0"]["placement"]["gpus"] == ["3"]


# -- workers that see several GPUs (packed SLURM jobs, Dask workers with GPU=2) ----------
def test_hold_gpus_gives_concurrent_jobs_distinct_groups(tmp_path, monkeypatch):
    from contextlib import ExitStack

    from spikeforge.experiments.executors import hold_gpus, run_placed

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.setenv("SPIKEFORGE_GPU_LOCKS", str(tmp_path))
    with ExitStack() as stack:
        holds = [stack.enter_context(hold_gpus(1)) for _ in range(4)]
        assert sorted(h.ids for h in holds) == [("0",), ("1",), ("2",), ("3",)]
        assert sorted(h.index for h in holds) == [0, 1, 2, 3] and all(h.choose for h in holds)
        assert not any(h.shared for h in holds)
        extra = stack.enter_context(hold_gpus(1))  # a fifth job: none free, it shares
        assert extra.shared
    with ExitStack() as stack:
        pairs = [stack.enter_context(hold_gpus(2)) for _ in range(2)]
        assert sorted(h.ids for h in pairs) == [("0", "1"), ("2", "3")]
        assert sorted(h.index for h in pairs) == [0, 2]
        # a job while both groups are held elsewhere: shares and says so
        payload = {"config": {"train": {"device": "auto"}}, "gpus_per_trial": 2,
                   "seconds": 0.0}
        shared = run_placed(recording_job, payload)
        assert shared["placement"]["shared"] is True
    payload = {"config": {"train": {"device": "auto"}}, "gpus_per_trial": 1, "seconds": 0.0}
    result = run_placed(recording_job, payload)
    assert result["device"] == f"cuda:{result['placement']['gpus'][0]}"  # auto -> cuda:J
    assert payload["config"]["train"]["device"] == "auto"  # the caller's payload unchanged
    cpu = run_placed(recording_job, {**payload, "config": {"train": {"device": "cpu"}}})
    assert cpu["device"] == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    alone = run_placed(recording_job, payload)
    assert alone["device"] == "auto" and alone["placement"]["gpus"] == ["5"]


def test_dask_gpu_resources_limit_concurrent_jobs_per_worker(tmp_path):
    distributed = pytest.importorskip("distributed")
    from spikeforge.experiments.executors import DaskExecutor

    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=4, processes=True, dashboard_address=None,
        silence_logs=40, resources={"GPU": 2},
        env={"CUDA_VISIBLE_DEVICES": "0,1", "SPIKEFORGE_GPU_LOCKS": str(tmp_path)})
    pool = DaskExecutor(4, cluster=cluster)
    try:
        assert pool.gpus_per_trial == 1  # detected from the worker's GPU resources
        jobs = [pool.submit(recording_job, {"config": {"train": {"device": "auto"}},
                                            "seconds": 1.0, "gpus_per_trial": 1,
                                            "label": f"t{i}"}) for i in range(4)]
        deadline = time.time() + 120
        while not all(j.done() for j in jobs):
            assert time.time() < deadline
            time.sleep(0.1)
        outcomes = [j.outcome() for j in jobs]
    finally:
        pool.close()
        cluster.close()
    assert all(ok for ok, _ in outcomes), outcomes
    records = [value for _, value in outcomes]
    assert _most_at_once(records) <= 2  # 4 threads, but GPU=2
    assert {r["device"] for r in records} <= {"cuda:0", "cuda:1"}
    for a, b in _overlapping(records):
        assert a["device"] != b["device"]
        assert a["placement"]["gpus"] != b["placement"]["gpus"]


@pytest.mark.slow
def test_dask_local_cluster_gets_one_worker_per_gpu(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from spikeforge.experiments.executors import make_executor, placement_summary

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    pool = make_executor("dask", 3, tmp_path)  # 3 workers on 2 GPUs: two share one
    try:
        assert pool.gpus_per_trial == 1 and pool.gpu_groups == [("4",), ("5",)]
        assert "3 workers share 2 group(s)" in placement_summary(pool)
        workers = pool.client.scheduler_info(n_workers=-1)["workers"].values()
        assert sorted(w["resources"]["GPU"] for w in workers) == [1, 1, 1]
        jobs = [pool.submit(recording_job, {"config": {"train": {"device": "auto"}},
                                            "seconds": 0.5, "gpus_per_trial": 1,
                                            "label": f"t{i}"}) for i in range(6)]
        deadline = time.time() + 120
        while not all(j.done() for j in jobs):
            assert time.time() < deadline
            time.sleep(0.1)
        records = [j.outcome()[1] for j in jobs]
    finally:
        pool.close()
    for record in records:  # each worker process saw exactly its own GPU
        assert record["cuda_visible_devices"] in {"4", "5"}
        assert record["device"] == "auto"
        assert record["placement"]["gpus"] == [record["cuda_visible_devices"]]
    by_worker = {}
    for record in records:
        by_worker.setdefault(record["worker"], set()).add(record["cuda_visible_devices"])
    assert all(len(ids) == 1 for ids in by_worker.values())
    assert set().union(*by_worker.values()) == {"4", "5"}


def test_dask_gpu_request_checked_against_workers_or_taken_for_slurm():
    distributed = pytest.importorskip("distributed")
    from spikeforge.errors import SpikeforgeError
    from spikeforge.experiments.executors import DaskExecutor

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None, silence_logs=40) as cluster:
        with pytest.raises(SpikeforgeError, match="advertises 1 GPU"):
            DaskExecutor(1, address=cluster.scheduler_address, gpus_per_trial=1)
        pool = DaskExecutor(1, address=cluster.scheduler_address)
        assert pool.gpus_per_trial == 0  # auto, no GPU workers: nothing changes
        pool.close()
        # a cluster whose GPU workers start later (SLURM jobs): the request is taken as is
        pool = DaskExecutor(1, cluster=cluster, gpus_per_trial=1)
        assert pool.gpus_per_trial == 1
        pool.close()


# -- SLURM ------------------------------------------------------------------------------
def test_slurm_job_script_requests_gpus_per_task(tmp_path):
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue import SLURMCluster

    from spikeforge.experiments.executors import SlurmResources, slurm_cluster_options

    def script(**fields) -> str:
        cluster = SLURMCluster(**slurm_cluster_options(SlurmResources(**fields),
                                                       tmp_path / "logs"))
        try:
            return cluster.job_script()
        finally:
            cluster.close()

    one = script(partition="gpu", gpus_per_trial=1)
    assert "#SBATCH --gpus-per-task=1" in one
    assert "--resources GPU=1" in one and "--nthreads 1" in one
    packed = script(partition="gpu", gpus_per_trial=1, trials_per_job=4, cpus_per_trial=2)
    assert "#SBATCH --gpus-per-task=4" in packed  # one task, one GPU per trial
    assert "--nworkers 4" in packed and "--resources GPU=1" in packed
    assert "#SBATCH --cpus-per-task=8" in packed
    gres = script(gpus_per_trial=2, gpu_option="gres")
    assert "#SBATCH --gres=gpu:2" in gres and "--resources GPU=2" in gres
    cpu = script()
    assert "gpus-per-task" not in cpu and "gres" not in cpu and "--resources" not in cpu


def test_slurm_executor_checks_the_gpu_job_script_and_asks_for_gpu_resources(tmp_path,
                                                                             monkeypatch):
    pytest.importorskip("dask_jobqueue")
    import dask_jobqueue

    from spikeforge.experiments.executors import make_executor

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"  # records the script `sbatch --test-only` is asked about
    fake.write_text(f"#!/bin/sh\ncp \"$2\" {tmp_path / 'checked.sh'}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(dask_jobqueue.SLURMCluster, "scale", lambda self, *a, **kw: None)
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text("slurm:\n  partition: gpu\n  gpus_per_trial: 1\n"
                            "  trials_per_job: 2\n")
    pool = make_executor("slurm", 2, tmp_path / "sweep", cluster_file=cluster_file)
    try:
        assert pool.name == "slurm" and pool.gpus_per_trial == 1
        checked = (tmp_path / "checked.sh").read_text()
        assert "#SBATCH --gpus-per-task=2" in checked and "--resources GPU=1" in checked
    finally:
        pool.close()
    pool = make_executor("slurm", 1, tmp_path / "sweep", cluster_file=cluster_file,
                         gpus_per_trial=0)  # --gpus-per-trial 0 overrides the file
    try:
        assert pool.gpus_per_trial == 0
        assert "gpus-per-task" not in (tmp_path / "checked.sh").read_text()
    finally:
        pool.close()


# -- bad requests -----------------------------------------------------------------------
def test_bad_gpu_requests_stop_before_anything_is_written(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from spikeforge.errors import SpikeforgeError
    from spikeforge.experiments.cv import run_cv
    from spikeforge.experiments.sweep import run_sweep

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {low: 1.0e-3, high: 5.0e-2}\n")
    out = tmp_path / "never"
    with pytest.raises(SpikeforgeError, match="train.device=cuda:1, but each trial/fold"):
        run_sweep(None, space, out, trials=1, overrides={"train.device": "cuda:1"},
                  task=recording_objective)
    with pytest.raises(SpikeforgeError, match="--gpus 3: only 2 GPU"):
        run_sweep(None, space, out, trials=1, gpus="3", task=recording_objective)
    with pytest.raises(SpikeforgeError, match="set gpus_per_trial in the --cluster file"):
        run_sweep(None, space, out, trials=1, gpus="1", executor="slurm",
                  task=recording_objective)
    with pytest.raises(SpikeforgeError, match="--fold 2: this cross-validation has 2 folds"):
        run_cv(None, out, folds="2", only_folds=[0, 2])
    assert not out.exists()


def test_cli_gpu_error_is_one_line(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {low: 1.0e-3, high: 5.0e-2}\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0"}
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", "sweep", "--space",
                           str(space), "--out", str(tmp_path / "s"), "--gpus-per-trial", "2"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --gpus-per-trial 2: only 1 GPU(s) to place on (0); "
                                   "lower --gpus-per-trial")
    assert not (tmp_path / "s").exists()


# -- a real cross-validation, one fold per array task -------------------------------------
@pytest.mark.slow
def test_cv_fold_tasks_record_their_gpu_and_collect(tmp_path):
    pytest.importorskip("h5py", reason="SHD files need h5py")
    from test_cv import _shd_sets

    sets = _shd_sets(tmp_path / "shd")
    out = tmp_path / "cv"
    base = [sys.executable, "-m", "spikeforge.cli", "cv", "--folds", "loso", "--out", str(out),
            *sets, "--json"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3"}  # what SLURM gives an array task
    procs = [subprocess.Popen(base + ["--fold", str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    for proc in procs:  # two array tasks sharing the folder at once
        stdout, stderr = proc.communicate(timeout=1200)
        assert proc.returncode == 0, stderr
        part = json.loads(stdout.strip().splitlines()[-1])
        assert part["n_folds"] == 4 and len(part["folds"]) == 1
    for i in (1, 2):
        record = json.loads((out / "folds" / f"fold-0{i}" / "fold.json").read_text())
        assert record["placement"]["gpus"] == ["3"]
        assert record["placement"]["cuda_visible_devices"] == "3"
    assert not (out / "cv_results.json").exists() and not (out / "final").exists()
    done = subprocess.run(base, capture_output=True, text=True, timeout=1800, env=env)
    assert done.returncode == 0, done.stderr
    assert "skipping 2 completed fold(s): fold-01, fold-02" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["n_folds"] == 4 and "final_test_accuracy" in summary
    assert all(f["placement"]["gpus"] == ["3"] for f in summary["folds"])
