"""Where trials and folds run: local processes, a Dask cluster, or SLURM jobs (via Dask).

Every executor takes a picklable module-level function and a payload dict, and returns a
:class:`Job` the coordinator polls. A job ends either ``ok`` with the function's return
value or with an error text; a worker that dies (killed, out of memory, node lost) is an
error, never a hang, so the coordinator can record it and retry.

Payloads travel in the clear (a spawn pipe, Dask's scheduler and workers), so they hold no
secrets: a sweep passes the name of an environment variable or the path of a file that
holds its storage URL (:mod:`spikeforge.experiments.credentials`). Workers inherit the
coordinator's environment here (spawned processes, a Dask ``LocalCluster``, SLURM jobs
submitted with ``sbatch``'s default ``--export=ALL``); a separately started Dask worker
needs the variable set where it runs.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from spikeforge.errors import SpikeforgeError

Task = Callable[[dict[str, Any]], dict[str, Any]]


class Job(Protocol):
    def done(self) -> bool: ...
    def outcome(self) -> tuple[bool, Any]: ...
    def cancel(self) -> None: ...


class Executor(Protocol):
    name: str
    slots: int
    threads: int | None  # CPU threads per job (None: leave the worker's default)

    def submit(self, fn: Task, payload: dict[str, Any]) -> Job: ...
    def close(self) -> None: ...


def limit_threads(threads: int | None) -> None:
    """Inside a worker: use ``threads`` CPU threads for torch and Numba (None: leave)."""
    if not threads:
        return
    import numba
    import torch

    torch.set_num_threads(int(threads))
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _error_text(exc: BaseException) -> str:
    """``Type: message`` followed by the traceback (first line is the summary)."""
    head = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return head + "\n" + "".join(traceback.format_exception(exc))


# -- local processes ------------------------------------------------------------------
def _exit_with_parent(parent: int) -> None:
    """Worker watchdog: if the coordinator dies (even by kill -9), stop training at once."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def _child_main(fn: Task, payload: dict[str, Any], conn, parent: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    try:
        conn.send(("ok", fn(payload)))
    except BaseException as exc:  # report everything, including KeyboardInterrupt
        conn.send(("error", _error_text(exc)))
    finally:
        conn.close()


class _ProcessJob:
    def __init__(self, ctx, fn: Task, payload: dict[str, Any]):
        self._conn, child = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_child_main, args=(fn, payload, child, os.getpid()),
                                   daemon=False)
        self.process.start()
        child.close()
        self._outcome: tuple[bool, Any] | None = None

    def done(self) -> bool:
        if self._outcome is not None:
            return True
        try:
            if self._conn.poll():
                status, value = self._conn.recv()
                self._outcome = (status == "ok", value)
        except (EOFError, OSError):
            pass
        if self._outcome is None and not self.process.is_alive():
            try:  # the result may have arrived just before the exit
                if self._conn.poll():
                    status, value = self._conn.recv()
                    self._outcome = (status == "ok", value)
            except (EOFError, OSError):
                pass
            if self._outcome is None:
                code = self.process.exitcode
                why = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
                       else f"exit code {code}")
                self._outcome = (False, f"WorkerDied: worker process {self.process.pid} died "
                                        f"({why}) before reporting a result")
        if self._outcome is not None:
            self.process.join(timeout=5)
            self._conn.close()
        return self._outcome is not None

    def outcome(self) -> tuple[bool, Any]:
        assert self._outcome is not None
        return self._outcome

    def cancel(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=10)
        if self.process.is_alive():  # ignored SIGTERM
            self.process.kill()
            self.process.join(timeout=10)


class LocalExecutor:
    """One fresh (spawned) process per job, at most ``workers`` at a time.

    A separate process per job isolates failures: killing one worker fails only its job.
    """

    name = "local"

    def __init__(self, workers: int):
        self.slots = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self._ctx = mp.get_context("spawn")
        self._jobs: list[_ProcessJob] = []

    def submit(self, fn: Task, payload: dict[str, Any]) -> _ProcessJob:
        job = _ProcessJob(self._ctx, fn, payload)
        self._jobs = [j for j in self._jobs if j.process.is_alive()] + [job]
        return job

    def close(self) -> None:
        """Stop workers still running (the coordinator is ending, e.g. on an error):
        otherwise the interpreter would wait for them at exit."""
        for job in self._jobs:
            job.cancel()
        self._jobs = []


# -- Dask -----------------------------------------------------------------------------
def _dask():
    try:
        import dask
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SpikeforgeError(
            "the dask and slurm executors need Dask; install it with: "
            "pip install \"spikeforge[sweep]\""
        ) from exc
    return dask, distributed


class _DaskJob:
    def __init__(self, future):
        self.future = future

    def done(self) -> bool:
        return self.future.done()

    def outcome(self) -> tuple[bool, Any]:
        if self.future.status == "finished":
            return True, self.future.result()
        exc = self.future.exception()
        if exc is None:
            return False, f"DaskError: task ended with status {self.future.status}"
        return False, _error_text(exc)

    def cancel(self) -> None:
        self.future.cancel()


class DaskExecutor:
    """Jobs as Dask tasks: a LocalCluster (processes, one thread each) or ``address``.

    The scheduler's own retries are turned off (``allowed-failures: 0``) so a killed
    worker surfaces here as an error the coordinator records and retries.
    """

    name = "dask"

    def __init__(self, workers: int, address: str | None = None, cluster: Any = None):
        dask, distributed = _dask()
        dask.config.set({"distributed.scheduler.allowed-failures": 0})
        self.slots = workers
        self.threads = None if address else max(1, (os.cpu_count() or 1) // workers)
        self._own_cluster = None
        try:
            if cluster is not None:
                self.client = distributed.Client(cluster)
            elif address:
                self.client = distributed.Client(address, timeout="10s")
            else:
                self._own_cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=40)
                self.client = distributed.Client(self._own_cluster)
        except OSError as exc:
            raise SpikeforgeError(
                f"cannot reach the Dask scheduler at {address}: {exc}; check --dask-address"
            ) from exc

    def submit(self, fn: Task, payload: dict[str, Any]) -> _DaskJob:
        key = f"{fn.__name__}-{payload.get('label', '')}-{uuid.uuid4().hex[:8]}"
        return _DaskJob(self.client.submit(fn, payload, pure=False, key=key))

    def close(self) -> None:
        self.client.close()
        if self._own_cluster is not None:
            self._own_cluster.close()


# -- SLURM ----------------------------------------------------------------------------
class SlurmResources(BaseModel):
    """SLURM job resources (the ``slurm:`` section of ``--cluster CLUSTER.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    account: str | None = None
    time: str = Field("01:00:00", description="wall time per job, HH:MM:SS")
    gpus_per_trial: int = Field(0, ge=0)
    cpus_per_trial: int = Field(1, ge=1)
    memory_per_trial: str = "4GB"
    trials_per_job: int = Field(1, ge=1, description="1: one trial per job; >1: packed node")
    extra: list[str] = Field(default_factory=list, description="more #SBATCH options")


def load_slurm_resources(path: Path | None) -> SlurmResources:
    """Read ``CLUSTER.yaml`` (``slurm:`` section) or return defaults."""
    import yaml
    from pydantic import ValidationError

    if path is None:
        return SlurmResources()
    try:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SpikeforgeError(f"cannot read cluster file {path}: {exc}") from exc
    if not isinstance(tree, dict) or set(tree) - {"slurm"}:
        raise SpikeforgeError(f"cluster file {path} must hold one 'slurm:' mapping")
    try:
        return SlurmResources.model_validate(tree.get("slurm") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpikeforgeError(f"cluster file {path}: slurm.{where}: {first['msg']}") from exc


def _memory_bytes(text: str) -> float:
    units = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    number = text.upper().rstrip("IB").rstrip("B")
    try:
        return float(number[:-1]) * units[number[-1]] if number[-1] in units else float(number)
    except (ValueError, IndexError) as exc:
        raise SpikeforgeError(f"slurm.memory_per_trial {text!r} is not a size like 4GB") from exc


def make_slurm_cluster(resources: SlurmResources, workers: int, log_dir: Path):
    """A dask-jobqueue ``SLURMCluster`` for ``workers`` concurrent trials, checked by
    ``sbatch --test-only`` first so options the cluster rejects fail before any work."""
    _dask()
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SpikeforgeError(
            "the slurm executor needs dask-jobqueue; install it with: "
            "pip install \"spikeforge[sweep]\""
        ) from exc
    if shutil.which("sbatch") is None:
        raise SpikeforgeError("sbatch not found: the slurm executor must run on a SLURM login "
                              "node; use --executor local or dask elsewhere")
    per_job = resources.trials_per_job
    directives = list(resources.extra)
    if resources.gpus_per_trial:
        directives.append(f"--gres=gpu:{resources.gpus_per_trial * per_job}")
    created = [p for p in (log_dir.parent, log_dir) if not p.exists()]
    memory = _memory_bytes(resources.memory_per_trial) * per_job
    cluster = SLURMCluster(
        queue=resources.partition, account=resources.account, walltime=resources.time,
        cores=resources.cpus_per_trial * per_job, processes=per_job,
        memory=f"{max(1, int(memory / 1e6))}MB", job_extra_directives=directives,
        log_directory=str(log_dir), python=sys.executable,
        worker_extra_args=["--nthreads", "1"],  # one trial at a time per worker process
        scheduler_options={"dashboard_address": None},
    )  # fmt: skip
    try:
        check_job_script(cluster.job_script())
    except BaseException:
        cluster.close()
        for path in created:  # leave nothing behind when SLURM says no
            shutil.rmtree(path, ignore_errors=True)
        raise
    cluster.scale(jobs=math.ceil(workers / per_job))
    return cluster


def check_job_script(script: str) -> None:
    """Ask SLURM whether it would accept ``script`` (``sbatch --test-only``); one-line error
    naming SLURM's complaint if not."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "check.sh"
        path.write_text(script)
        proc = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True,
                              text=True, timeout=60)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise SpikeforgeError(f"SLURM rejected the job options ({reason}); fix the slurm "
                              "section of --cluster")


def make_executor(kind: str, workers: int, folder: Path, address: str | None = None,
                  cluster_file: Path | None = None) -> Executor:
    """Executor by name: ``local`` (default), ``dask`` or ``slurm``."""
    if workers < 1:
        raise SpikeforgeError(f"--workers must be >= 1 (got {workers})")
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "dask":
        return DaskExecutor(workers, address=address)
    if kind == "slurm":
        resources = load_slurm_resources(cluster_file)
        cluster = make_slurm_cluster(resources, workers, folder / "slurm-logs")
        executor = DaskExecutor(workers, cluster=cluster)
        executor.name = "slurm"
        executor.threads = resources.cpus_per_trial
        executor._own_cluster = cluster
        return executor
    raise SpikeforgeError(f"unknown executor {kind!r}; choose local, dask or slurm")
