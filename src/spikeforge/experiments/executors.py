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

GPU placement (one GPU per trial/fold, ``gpus_per_trial`` in a payload): local workers
get their own ``CUDA_VISIBLE_DEVICES`` before their interpreter touches CUDA (the
least-busy group of the GPUs the coordinator sees); Dask tasks ask for worker resources
(``resources={"GPU": k}``; a Dask ``LocalCluster`` started here gets one worker process
per GPU group, with that group as its ``CUDA_VISIBLE_DEVICES``); SLURM jobs request
``--gpus-per-task`` and their workers advertise ``GPU`` resources. A worker that sees
more GPUs than one trial needs (a packed SLURM job, a Dask worker with ``GPU=2``) takes a
free group under a node-local lock file and trains on ``cuda:J`` of it. Every result
carries the ``placement`` it ran with (host, ``CUDA_VISIBLE_DEVICES``, device).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import math
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

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
    gpus_per_trial: int  # GPUs each job is given (0: no placement, the worker's own view)

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


# -- GPU placement --------------------------------------------------------------------
GPU_RESOURCE = "GPU"
"""The Dask worker resource that counts GPUs (``dask worker --resources GPU=1``)."""


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (indices or
    ``GPU-``/``MIG-`` UUIDs; CUDA's rules: the list ends at the first invalid entry, an
    empty value hides every GPU). Without the variable: ``"0" .. str(n - 1)`` for the
    ``torch.cuda.device_count()`` GPUs (none when torch has no CUDA)."""
    env = os.environ if environ is None else environ
    text = env.get("CUDA_VISIBLE_DEVICES")
    if text is not None:
        ids: list[str] = []
        for part in (p.strip() for p in text.split(",")):
            if not (part.isdigit() or part.startswith(("GPU-", "MIG-"))) or part in ids:
                break
            ids.append(part)
        return ids
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch / a broken driver: no GPU to place on
        return []


def gpu_groups(spec: str, per_trial: int | None, visible: list[str]) -> list[tuple[str, ...]]:
    """The GPU groups jobs are placed on, one group (``per_trial`` GPUs) per running job.

    ``spec``: ``auto`` (every visible GPU; none visible: no placement), ``none``, ``N``
    (the first N visible GPUs) or a comma list of visible indices (``0,2``; ``3,`` for one).
    ``per_trial``: GPUs per job (None: 1, and no error without GPUs; 0: no placement).
    ``visible``: :func:`visible_gpus` of the coordinator. Returns ``[]`` for no placement;
    raises :class:`SpikeforgeError` for a request the visible GPUs cannot meet.
    """
    spec = str(spec).strip().lower()
    if per_trial is not None and per_trial < 0:
        raise SpikeforgeError(f"--gpus-per-trial must be >= 0 (got {per_trial})")
    if spec == "none" or per_trial == 0:
        return []
    shown = ",".join(visible) if visible else "none"
    if spec == "auto":
        chosen = list(visible)
    elif spec.isdigit() and "," not in spec:
        count = int(spec)
        if count > len(visible):
            raise SpikeforgeError(f"--gpus {count}: only {len(visible)} GPU(s) are visible "
                                  f"(CUDA_VISIBLE_DEVICES: {shown}); use --gpus "
                                  f"{len(visible)} or auto")
        chosen = visible[:count]
    else:
        try:
            picks = [int(part) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise SpikeforgeError(f"--gpus {spec!r}: use auto, none, a count N or a comma "
                                  "list of visible GPU indices such as 0,2") from None
        bad = [i for i in picks if not 0 <= i < len(visible)]
        if bad or len(set(picks)) != len(picks) or not picks:
            raise SpikeforgeError(f"--gpus {spec}: give distinct indices below "
                                  f"{len(visible)} (visible GPUs: {shown})")
        chosen = [visible[i] for i in picks]
    if not chosen:
        if per_trial is None and spec == "auto":
            return []  # no GPU here: nothing changes
        raise SpikeforgeError(f"GPUs were requested (--gpus {spec}, --gpus-per-trial "
                              f"{per_trial or 1}) but none is visible (CUDA_VISIBLE_DEVICES: "
                              f"{shown}); use --gpus none to run on the CPU")
    k = per_trial or 1
    if k > len(chosen):
        raise SpikeforgeError(f"--gpus-per-trial {k}: only {len(chosen)} GPU(s) to place on "
                              f"({','.join(chosen)}); lower --gpus-per-trial")
    return [tuple(chosen[i:i + k]) for i in range(0, len(chosen) - k + 1, k)]


def check_device_for_placement(device: str, per_trial: int) -> None:
    """Raise :class:`SpikeforgeError` if ``train.device`` names a GPU index a placed job
    cannot see (each job sees only its own ``per_trial`` GPUs, as ``cuda:0`` ...)."""
    if per_trial and device.startswith("cuda:") and int(device[5:]) >= per_trial:
        raise SpikeforgeError(f"train.device={device}, but each trial/fold sees only its own "
                              f"{per_trial} GPU(s) (cuda:0 .. cuda:{per_trial - 1}); use "
                              "train.device=cuda or auto, and --gpus to choose the GPUs")


def wants_gpu(config: dict[str, Any]) -> bool:
    """Does the dumped run config ``config`` train on a GPU when it is given one?"""
    from spikeforge.experiments.loading import CPU_ONLY_METHODS

    train = config.get("train", {})
    return train.get("device", "auto") != "cpu" and train.get("method") not in CPU_ONLY_METHODS


@dataclass(frozen=True)
class GpuHold:
    """GPUs a running job holds on its worker: ``ids`` (``CUDA_VISIBLE_DEVICES`` entries),
    ``index`` (torch index of the first, within the worker's visible GPUs), ``shared``
    (no free group was left: another job uses them too)."""

    ids: tuple[str, ...]
    index: int
    choose: bool  # the worker sees more than one group: train on cuda:index
    shared: bool = False


_LOCKS: dict[str, Any] = {}  # group key -> open lock file held by this process


def _lock_dir() -> Path:
    """Where GPU lock files go: ``$SPIKEFORGE_GPU_LOCKS``, ``$SLURM_TMPDIR`` or the temp
    folder (node-local: the locks only order the jobs of one node)."""
    return Path(os.environ.get("SPIKEFORGE_GPU_LOCKS") or os.environ.get("SLURM_TMPDIR")
                or tempfile.gettempdir())


def _lock_name(ids: tuple[str, ...]) -> str:
    # SLURM renumbers a job's GPUs from 0 (cgroup device constraint): key by job there
    scope = os.environ.get("SLURM_JOB_ID") or f"uid{os.getuid()}"
    return f"spikeforge-gpu-{scope}-{'_'.join(ids)}.lock"


_last_group: dict[int, tuple[str, ...]] = {}  # pid -> group it used last (keep to one GPU)


@contextlib.contextmanager
def hold_gpus(per_trial: int) -> Iterator[GpuHold | None]:
    """Inside a worker: hold ``per_trial`` of this worker's visible GPUs while a job runs.

    One group visible: that group (nothing to choose). Several: the first free one under
    an exclusive ``flock`` on a node-local lock file (:func:`_lock_dir`), this process's
    previous group first, so that a Dask/SLURM worker process keeps to one GPU; the lock
    goes with the job (or the process). None: no GPU visible.
    """
    visible = visible_gpus()
    if per_trial <= 0 or not visible:
        yield None
        return
    groups = [tuple(visible[i:i + per_trial])
              for i in range(0, max(1, len(visible) - per_trial + 1), per_trial)]
    if len(groups) == 1:
        yield GpuHold(groups[0], 0, choose=False)
        return
    last = _last_group.get(os.getpid())
    first = groups.index(last) if last in groups else 0
    order = [first, *(i for i in range(len(groups)) if i != first)]
    handle, chosen = None, None
    for i in order:
        path = _lock_dir() / _lock_name(groups[i])
        candidate = open(path, "a+")  # noqa: SIM115 - held open while the job runs
        try:
            fcntl.flock(candidate, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            candidate.close()
            continue
        handle, chosen = candidate, i
        break
    shared = chosen is None
    if shared:  # more jobs than GPU groups on this worker (resources not set): share one
        chosen = first
    _last_group[os.getpid()] = groups[chosen]
    try:
        yield GpuHold(groups[chosen], chosen * per_trial, choose=True, shared=shared)
    finally:
        if handle is not None:
            handle.close()  # releases the flock


def placement_record(hold: GpuHold | None, device: str | None) -> dict[str, Any]:
    """What a job records about where it ran (``placement`` in results, ``fold.json``)."""
    return {"host": socket.gethostname(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "gpus": list(hold.ids) if hold else [], "device": device,
            **({"shared": True} if hold and hold.shared else {})}


def placement_text(placement: dict[str, Any] | None) -> str:
    """One phrase for a worker log line, e.g. ``GPU 2 (cuda:0)``; empty without GPUs."""
    if not placement or not placement.get("gpus"):
        return ""
    device = placement.get("device") or "cuda"
    shared = ", shared" if placement.get("shared") else ""
    return f" GPU {','.join(placement['gpus'])} ({device}{shared})"


def run_placed(fn: Task, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``fn(payload)`` in a worker on the GPUs it holds (:func:`hold_gpus`).

    ``payload["gpus_per_trial"]`` GPUs are held while ``fn`` runs; when this worker sees
    more than one group, ``train.device`` ``auto``/``cuda`` of ``payload["config"]``
    becomes ``cuda:J`` (the held group; ``train.device`` is not part of a run's
    identity). ``payload["placement"]`` and the result's ``placement`` record it.
    """
    per_trial = int(payload.get("gpus_per_trial") or 0)
    with hold_gpus(per_trial) as hold:
        payload = dict(payload)
        device = None
        config = payload.get("config")
        if hold is not None and isinstance(config, dict):
            device = config.get("train", {}).get("device", "auto")
            if hold.choose and device in ("auto", "cuda"):
                device = f"cuda:{hold.index}"
                payload["config"] = {**config, "train": {**config["train"], "device": device}}
        payload["placement"] = placement_record(hold, device)
        try:
            result = fn(payload)
        finally:
            torch = sys.modules.get("torch")
            if hold is not None and torch is not None and torch.cuda.is_initialized():
                torch.cuda.empty_cache()  # the next job here may be given another GPU
    if isinstance(result, dict) and hold is not None:
        result = {**result, "placement": payload["placement"]}
    return result


def placement_summary(pool: Executor) -> str | None:
    """One line saying how ``pool`` places jobs on GPUs (None: no placement)."""
    k = getattr(pool, "gpus_per_trial", 0)
    if not k:
        return None
    groups = getattr(pool, "groups", None) or getattr(pool, "gpu_groups", None)
    if groups:
        names = " ".join(",".join(g) for g in groups)
        share = (f"; {pool.slots} workers share {len(groups)} group(s)"
                 if pool.slots > len(groups) else "")
        return f"GPU placement: {k} GPU(s) per trial/fold on {names}{share}"
    return (f"GPU placement: {k} GPU(s) per trial/fold (Dask resource {GPU_RESOURCE}="
            f"{k}; each worker uses its own CUDA_VISIBLE_DEVICES)")


# -- local processes ------------------------------------------------------------------
def _exit_with_parent(parent: int) -> None:
    """Worker watchdog: if the coordinator dies (even by kill -9), stop training at once."""
    while True:
        if os.getppid() != parent:
            os._exit(3)
        time.sleep(0.5)


def _child_main(fn_blob: bytes, payload: dict[str, Any], conn, parent: int,
                env: dict[str, str]) -> None:
    """A local worker: set its environment (its GPUs) first, then load and run the job
    (``fn`` travels pickled, so importing its module cannot touch CUDA before that)."""
    os.environ.update(env)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    try:
        conn.send(("ok", run_placed(pickle.loads(fn_blob), payload)))
    except BaseException as exc:  # report everything, including KeyboardInterrupt
        conn.send(("error", _error_text(exc)))
    finally:
        conn.close()


class _ProcessJob:
    def __init__(self, ctx, fn: Task, payload: dict[str, Any],
                 gpus: tuple[str, ...] | None = None):
        self.gpus = gpus
        env = {"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else {}
        self._conn, child = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_child_main, daemon=False,
                                   args=(pickle.dumps(fn), payload, child, os.getpid(), env))
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
    With ``gpus`` (groups from :func:`gpu_groups`), a job whose payload asks for GPUs
    (``gpus_per_trial``) runs with ``CUDA_VISIBLE_DEVICES`` set to the group fewest
    running jobs hold (a free one while ``workers`` <= groups; ties: the lowest).
    """

    name = "local"

    def __init__(self, workers: int, gpus: list[tuple[str, ...]] | None = None):
        self.slots = workers
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.groups = list(gpus or [])
        self.gpus_per_trial = len(self.groups[0]) if self.groups else 0
        self._ctx = mp.get_context("spawn")
        self._jobs: list[_ProcessJob] = []

    def _free_group(self) -> tuple[str, ...]:
        busy = [j.gpus for j in self._jobs if j.gpus is not None and not j.done()]
        return min(self.groups, key=lambda g: (busy.count(g), self.groups.index(g)))

    def submit(self, fn: Task, payload: dict[str, Any]) -> _ProcessJob:
        gpus = (self._free_group() if self.groups and payload.get("gpus_per_trial")
                else None)
        job = _ProcessJob(self._ctx, fn, payload, gpus)
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

    GPUs: with ``gpus`` (groups from :func:`gpu_groups`) the LocalCluster started here has
    one worker process per group (round-robin when ``workers`` exceeds the groups) with
    that group as its ``CUDA_VISIBLE_DEVICES`` and ``GPU`` resources. Jobs that ask for
    GPUs are submitted with ``resources={"GPU": gpus_per_trial}``, so a worker runs at most
    as many of them at once as it advertises. ``gpus_per_trial`` for an ``address`` or a
    given ``cluster``: None = 1 if a worker advertises ``GPU`` resources now, else 0; a
    number is checked against the workers of an ``address`` and taken as it is for a
    ``cluster`` whose workers start later (SLURM jobs advertise ``GPU`` when they run).
    """

    name = "dask"

    def __init__(self, workers: int, address: str | None = None, cluster: Any = None,
                 gpus: list[tuple[str, ...]] | None = None, gpus_per_trial: int | None = None):
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
                self._own_cluster = _local_cluster(distributed, workers, gpus or [])
                self.client = distributed.Client(self._own_cluster)
        except OSError as exc:
            raise SpikeforgeError(
                f"cannot reach the Dask scheduler at {address}: {exc}; check --dask-address"
            ) from exc
        self.gpu_groups = list(gpus or []) if self._own_cluster is not None else []
        if self._own_cluster is not None:
            self.gpus_per_trial = len(gpus[0]) if gpus else 0
        elif cluster is not None and gpus_per_trial is not None:
            self.gpus_per_trial = gpus_per_trial  # its workers (SLURM jobs) start later
        elif gpus_per_trial is None or gpus_per_trial > 0:
            self.gpus_per_trial = self._check_gpu_workers(gpus_per_trial, address)
        else:
            self.gpus_per_trial = 0

    def _check_gpu_workers(self, wanted: int | None, address: str | None) -> int:
        """GPUs per job on an existing cluster: ``wanted`` if some worker advertises that
        many ``GPU`` (else an error), or for None 1 when a worker advertises any."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        most = max((float(w.get("resources", {}).get(GPU_RESOURCE, 0))
                    for w in workers.values()), default=0.0)
        if wanted is None:
            return 1 if most >= 1 else 0
        if most < wanted:
            self.close()
            raise SpikeforgeError(
                f"--gpus-per-trial {wanted}: no worker of the Dask scheduler at {address} "
                f"advertises {wanted} GPU(s); start each worker with its own "
                f"CUDA_VISIBLE_DEVICES and --resources {GPU_RESOURCE}={wanted}")
        return wanted

    def submit(self, fn: Task, payload: dict[str, Any]) -> _DaskJob:
        key = f"{fn.__name__}-{payload.get('label', '')}-{uuid.uuid4().hex[:8]}"
        wanted = int(payload.get("gpus_per_trial") or 0) if self.gpus_per_trial else 0
        resources = {GPU_RESOURCE: wanted} if wanted else None
        return _DaskJob(self.client.submit(run_placed, fn, payload, pure=False, key=key,
                                           resources=resources))

    def close(self) -> None:
        self.client.close()
        if self._own_cluster is not None:
            self._own_cluster.close()


def _local_cluster(distributed, workers: int, gpus: list[tuple[str, ...]]):
    """A Dask LocalCluster of ``workers`` one-thread processes; with ``gpus``, worker i
    gets group ``i % len(gpus)`` as its ``CUDA_VISIBLE_DEVICES`` and ``GPU`` resources."""
    if not gpus:
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                        processes=True, dashboard_address=None,
                                        silence_logs=40)
    cluster = distributed.LocalCluster(n_workers=0, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    for i in range(workers):
        group = gpus[i % len(gpus)]
        spec = copy.deepcopy(cluster.new_spec)
        spec["options"] = {**spec["options"], "resources": {GPU_RESOURCE: len(group)},
                           "env": {"CUDA_VISIBLE_DEVICES": ",".join(group)}}
        cluster.worker_spec[f"gpu-worker-{i}"] = spec
    cluster.sync(cluster._correct_state)
    return cluster


# -- SLURM ----------------------------------------------------------------------------
class SlurmResources(BaseModel):
    """SLURM job resources (the ``slurm:`` section of ``--cluster CLUSTER.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    account: str | None = None
    time: str = Field("01:00:00", description="wall time per job, HH:MM:SS")
    gpus_per_trial: int = Field(0, ge=0, description="GPUs per trial/fold (0: none)")
    gpu_option: Literal["gpus-per-task", "gres"] = Field(
        "gpus-per-task", description="how jobs ask for GPUs: --gpus-per-task=N (SLURM >= "
        "19.05) or --gres=gpu:N")
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


def slurm_cluster_options(resources: SlurmResources, log_dir: Path) -> dict[str, Any]:
    """Keyword arguments of the dask-jobqueue ``SLURMCluster`` for ``resources``.

    A job hosts ``trials_per_job`` one-thread worker processes. With ``gpus_per_trial``
    = k it requests ``--gpus-per-task=k * trials_per_job`` (or ``--gres=gpu:...``; the job
    is one task) and every worker advertises ``--resources GPU=k``, so each runs one GPU
    job at a time on a group of k GPUs it holds (:func:`hold_gpus`).
    """
    per_job = resources.trials_per_job
    directives = list(resources.extra)
    worker_args = ["--nthreads", "1"]  # one trial at a time per worker process
    if resources.gpus_per_trial:
        total = resources.gpus_per_trial * per_job
        directives.append(f"--gpus-per-task={total}" if resources.gpu_option == "gpus-per-task"
                          else f"--gres=gpu:{total}")
        worker_args += ["--resources", f"{GPU_RESOURCE}={resources.gpus_per_trial}"]
    memory = _memory_bytes(resources.memory_per_trial) * per_job
    return dict(
        queue=resources.partition, account=resources.account, walltime=resources.time,
        cores=resources.cpus_per_trial * per_job, processes=per_job,
        memory=f"{max(1, int(memory / 1e6))}MB", job_extra_directives=directives,
        log_directory=str(log_dir), python=sys.executable, worker_extra_args=worker_args,
        scheduler_options={"dashboard_address": None},
    )  # fmt: skip


def make_slurm_cluster(resources: SlurmResources, workers: int, log_dir: Path):
    """A dask-jobqueue ``SLURMCluster`` for ``workers`` concurrent trials
    (:func:`slurm_cluster_options`), checked by ``sbatch --test-only`` first so options the
    cluster rejects fail before any work."""
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
    created = [p for p in (log_dir.parent, log_dir) if not p.exists()]
    options = slurm_cluster_options(resources, log_dir)
    cluster = SLURMCluster(**options)
    try:
        check_job_script(cluster.job_script())
    except BaseException:
        cluster.close()
        for path in created:  # leave nothing behind when SLURM says no
            shutil.rmtree(path, ignore_errors=True)
        raise
    cluster.scale(jobs=math.ceil(workers / resources.trials_per_job))
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
                  cluster_file: Path | None = None, gpus: str = "auto",
                  gpus_per_trial: int | None = None) -> Executor:
    """Executor by name: ``local`` (default), ``dask`` or ``slurm``.

    GPU placement: ``gpus`` / ``gpus_per_trial`` as in :func:`gpu_groups` for ``local`` and
    a Dask LocalCluster started here (the GPUs this machine sees); for ``--dask-address``
    the workers' ``GPU`` resources decide (``gpus`` must stay ``auto``); for ``slurm`` the
    cluster file's ``gpus_per_trial`` (``gpus_per_trial`` here overrides it). The
    executor's ``gpus_per_trial`` is what each job that trains on a GPU is given (0: none).
    """
    if workers < 1:
        raise SpikeforgeError(f"--workers must be >= 1 (got {workers})")
    if kind not in ("local", "dask", "slurm"):
        raise SpikeforgeError(f"unknown executor {kind!r}; choose local, dask or slurm")
    remote = kind == "slurm" or (kind == "dask" and address)
    if remote and str(gpus).strip().lower() != "auto":
        raise SpikeforgeError(
            f"--gpus {gpus} chooses GPUs of this machine; with --executor {kind} "
            + ("set gpus_per_trial in the --cluster file" if kind == "slurm" else
               "start each Dask worker with its own CUDA_VISIBLE_DEVICES and --resources "
               "GPU=1") + " (and --gpus-per-trial to override)")
    if gpus_per_trial is not None and gpus_per_trial < 0:
        raise SpikeforgeError(f"--gpus-per-trial must be >= 0 (got {gpus_per_trial})")
    if kind == "slurm":
        resources = load_slurm_resources(cluster_file)
        if gpus_per_trial is not None:
            resources = resources.model_copy(update={"gpus_per_trial": gpus_per_trial})
        cluster = make_slurm_cluster(resources, workers, folder / "slurm-logs")
        executor = DaskExecutor(workers, cluster=cluster,
                                gpus_per_trial=resources.gpus_per_trial)
        executor.name = "slurm"
        executor.threads = resources.cpus_per_trial
        executor._own_cluster = cluster
        return executor
    if kind == "dask" and address:
        return DaskExecutor(workers, address=address, gpus_per_trial=gpus_per_trial)
    groups = gpu_groups(gpus, gpus_per_trial, visible_gpus())
    if kind == "local":
        return LocalExecutor(workers, gpus=groups)
    return DaskExecutor(workers, gpus=groups)
