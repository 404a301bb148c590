"""Parameter sweeps with Optuna: a coordinator asks trials, executors train them.

Sweep folder ``OUT/``::

    sweep.json       what this sweep is (config, space, sampler, pruner, storage, seed)
    base_config.yaml the resolved base config every trial starts from
    study.db         the Optuna store (SQLite) unless --storage names another database
    trials/trial-0003/  a normal run folder per trial (config.yaml, metrics.jsonl, ...)
    logs/trial-0003.log the trial's console output
    summary.json     best trial and counts (rewritten at the end; the store is the truth)

Resilience: the Optuna store is the single source of truth and every write to it is one
database transaction. Trials left RUNNING by a coordinator that died are adopted and
re-run by the next coordinator *as the same trial* in the same run folder, which resumes
from its last epoch checkpoint (or returns at once if ``results.json`` already exists), so
re-running the command never duplicates or loses a trial. A trial whose worker raised or
died is recorded (``errors`` user attribute) and retried up to ``max_retries`` times before
it is marked FAIL with its last error.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from spikeforge.atomic import TEMP_MARK, atomic_path, remove_stale_temps, write_text_atomic
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import RunConfig, dump_config, load_config, semantic_config
from spikeforge.experiments.credentials import (
    StorageRef,
    redact,
    resolve_storage,
    storage_from_options,
)
from spikeforge.experiments.executors import (
    Task,
    check_device_for_placement,
    limit_threads,
    make_executor,
    placement_summary,
    placement_text,
    wants_gpu,
)
from spikeforge.experiments.space import (
    SearchSpace,
    load_space,
    parse_space,
    require_optuna,
    stored_space,
)
from spikeforge.fault_injection import watch_commits
from spikeforge.folder_lock import FolderLock

SWEEP_FILE, BASE_CONFIG, SUMMARY = "sweep.json", "base_config.yaml", "summary.json"
STUDY_NAME = "spikeforge-sweep"
HEARTBEAT_S, STALE_S = 20.0, 120.0
SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "none")


# -- storage --------------------------------------------------------------------------
LOCAL_STORE = "sqlite:///study.db"
"""How ``sweep.json`` names the default store: ``study.db`` inside the sweep folder
(wherever the folder has moved)."""


def _recorded_storage(url: str, out: Path) -> str:
    """The storage as ``sweep.json`` keeps it: redacted, and the folder's own SQLite
    file as :data:`LOCAL_STORE` (so a moved folder still finds its store)."""
    return LOCAL_STORE if url == f"sqlite:///{out / 'study.db'}" else redact(url)


def stored_storage_url(recorded: str, out: Path) -> str:
    """The URL to open for a ``sweep.json`` storage entry of sweep folder ``out``."""
    if recorded == LOCAL_STORE:
        return f"sqlite:///{Path(out).absolute() / 'study.db'}"
    if recorded.startswith("sqlite:///") and not Path(recorded[10:]).exists() \
            and (Path(out) / "study.db").is_file():  # written by an older version, moved
        return f"sqlite:///{Path(out).absolute() / 'study.db'}"
    return recorded


def _with_driver(url: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg2://`` when only psycopg2 is installed
    (SQLAlchemy 2.1 defaults to psycopg 3; ``spikeforge[sweep]`` ships psycopg2-binary)."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def open_storage(url: str):
    """An Optuna RDB storage for ``url`` (sqlite:///..., postgresql://...), connected and
    checked now so an unreachable database fails before any work starts."""
    optuna = require_optuna()
    url = _with_driver(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        kwargs = {"connect_args": {"connect_timeout": 5}, "pool_pre_ping": True}
    try:
        return watch_commits(optuna.storages.RDBStorage(url, engine_kwargs=kwargs))
    except ImportError as exc:
        missing = exc.name or getattr(exc.__cause__, "name", None) or "driver"
        raise SpikeforgeError(
            f"storage {redact(url)} needs a database driver ({missing}); install it with: "
            "pip install \"spikeforge[sweep]\""
        ) from exc
    except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot use it"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpikeforgeError(
            f"cannot open sweep storage {redact(url)} ({reason[:200]}); check the --storage URL "
            "and that the database server is running"
        ) from exc


def _sampler(name: str, space: SearchSpace, seed: int):
    optuna = require_optuna()
    if name == "grid":

        class AskTellGridSampler(optuna.samplers.GridSampler):
            """Optuna's grid sampler without the ``study.stop()`` it calls once the grid
            is exhausted (valid only inside ``study.optimize``; the coordinator asks for
            at most the grid's size itself)."""

            def after_trial(self, study, trial, state, values) -> None:
                return None

        return AskTellGridSampler(space.grid(), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    raise SpikeforgeError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def _pruner(name: str):
    optuna = require_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SpikeforgeError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")


# -- the trial, run by a worker -------------------------------------------------------
def run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """Train one trial's run folder (resuming it); runs in a worker process.

    Reports each epoch's validation accuracy to the store and raises out of training when
    the pruner says so. Returns ``{"state": "complete"|"pruned", ...results}``.
    """
    optuna = require_optuna()
    from spikeforge.experiments.runner import train_run

    limit_threads(payload.get("threads"))
    config = RunConfig.model_validate(payload["config"])
    log_path = Path(payload["log"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last: dict[str, Any] = {}
    with open(log_path, "a") as log:
        log.write(f"--- attempt on {socket.gethostname()} pid {os.getpid()}"
                  f"{placement_text(payload.get('placement'))} "
                  f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        log.flush()
        study = optuna.load_study(study_name=payload["study_name"],
                                  storage=open_storage(resolve_storage(payload["storage"])),
                                  pruner=_pruner(payload["pruner"]))
        trial = optuna.trial.Trial(study, payload["trial_id"]) if payload.get("prune") else None

        def on_epoch(row: dict[str, Any]) -> None:
            last.update(row)
            if trial is not None:
                trial.report(float(row["val_accuracy"]), int(row["epoch"]))
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {row['epoch']}")

        try:
            with WorkerHeartbeat(study, payload["trial_id"]):
                results = train_run(config, Path(payload["run_dir"]),
                                    console=Console(file=log, width=120), on_epoch=on_epoch)
        except optuna.TrialPruned:
            return {"state": "pruned", "epoch": last.get("epoch"),
                    "val_accuracy": last.get("val_accuracy")}
    return {"state": "complete", **results}


WORKER_BEAT = "worker_heartbeat"
"""Trial user attribute ``{"host", "pid", "time"}``: the worker training the trial and
when (Unix seconds) it last said it is alive."""


class WorkerHeartbeat:
    """While a worker trains a trial, store ``worker_heartbeat`` on the trial every
    :data:`HEARTBEAT_S` seconds (a daemon thread), so no coordinator adopts the trial while
    its worker, possibly on another node, still runs it (see :meth:`_Owner.is_orphan`)."""

    def __init__(self, study, trial_id: int, every_s: float = HEARTBEAT_S):
        self.trial = require_optuna().trial.Trial(study, trial_id)
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="worker-heartbeat")

    def beat(self) -> None:
        with contextlib.suppress(Exception):  # a busy store must not kill the training
            self.trial.set_user_attr(WORKER_BEAT, {"host": socket.gethostname(),
                                                   "pid": os.getpid(), "time": time.time()})

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def __enter__(self) -> WorkerHeartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


# -- the sweep definition -------------------------------------------------------------
@dataclass
class SweepPlan:
    """Everything that identifies a sweep (stored in ``sweep.json``)."""

    config: dict[str, Any]
    space: Any
    sampler: str
    pruner: str
    seed: int
    storage: str
    study_name: str = STUDY_NAME
    storage_ref: StorageRef | None = None
    """What task payloads carry instead of ``storage`` (see :mod:`.credentials`)."""

    def identity(self) -> dict[str, Any]:
        return {"config": self.config, "space": self.space, "sampler": self.sampler,
                "pruner": self.pruner, "seed": self.seed, "study_name": self.study_name}


def _trial_dir(out: Path, number: int) -> Path:
    return out / "trials" / f"trial-{number:04d}"


def _same_sweep(existing: dict[str, Any], plan: SweepPlan) -> bool:
    """Does ``sweep.json`` content ``existing`` describe ``plan`` (semantic config)?"""
    want = json.loads(json.dumps(plan.identity()))
    have = {k: existing.get(k) for k in want}
    if not isinstance(have["config"], dict):
        return False
    try:
        configs = semantic_config(have.pop("config")), semantic_config(want.pop("config"))
    except SpikeforgeError:
        return False
    return have == want and configs[0] == configs[1]


def _prepare_folder(out: Path, plan: SweepPlan, base: RunConfig) -> None:
    """Create the sweep folder, or check that it holds this same sweep (resume).

    Safe when several coordinators start at once on a shared folder (SLURM array jobs):
    ``sweep.json`` is created exclusively (hard link), so exactly one definition wins and
    every other coordinator compares itself against it.
    """
    path = out / SWEEP_FILE
    record = {**plan.identity(), "storage": _recorded_storage(plan.storage, out)}
    if not path.is_file():
        known = {"slurm-logs", "logs", BASE_CONFIG, ".lock", f".{SWEEP_FILE}.new",
                 *(f"study.db{end}" for end in ("", "-journal", "-wal", "-shm"))}
        if out.exists() and {p.name for p in out.iterdir() if TEMP_MARK not in p.name} - known:
            raise SpikeforgeError(f"output folder {out} exists but is not a sweep; choose "
                                  "another --out")
        out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, "sweep", wait_s=STALE_S):  # every write to the folder's own files
        remove_stale_temps(out)  # of a killed writer; live writers hold this lock
        if not path.is_file():
            with atomic_path(out / f".{SWEEP_FILE}.new") as tmp:
                tmp.write_text(json.dumps(record, indent=2) + "\n")
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            (out / f".{SWEEP_FILE}.new").unlink(missing_ok=True)
        existing = json.loads(path.read_text())
        if not _same_sweep(existing, plan):
            raise SpikeforgeError(
                f"{out} holds a different sweep (config, space, sampler, pruner or seed "
                "differ); use a new --out to start a new sweep"
            )
        # base_config.yaml follows sweep.json (the winner's config when several
        # coordinators started at once; a leftover of a killed creation is replaced)
        text = dump_config(RunConfig.model_validate(existing["config"]))
        if not (out / BASE_CONFIG).is_file() or (out / BASE_CONFIG).read_text() != text:
            write_text_atomic(out / BASE_CONFIG, text)


class _Owner:
    """This coordinator's identity and heartbeat in the store (for adopting orphans)."""

    def __init__(self, study):
        self.study = study
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.name = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:6]}"
        self.last = 0.0

    def beat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self.last > HEARTBEAT_S:
            self.study.set_user_attr(f"heartbeat:{self.name}", now)
            self.last = now

    def is_orphan(self, frozen) -> bool:
        """Is RUNNING trial ``frozen`` abandoned: its coordinator dead (its PID gone on this
        host, or its heartbeat older than :data:`STALE_S`) and its worker too (its PID gone on
        this host, or no worker heartbeat on the trial within :data:`STALE_S`: a remote
        worker may outlive its coordinator)?"""
        if self._worker_alive(frozen):
            return False
        owner = frozen.user_attrs.get("owner")
        if owner is None:
            return True
        host, pid, _ = owner.split(":")
        if self._dead_here(host, pid):
            return True
        beat = self.study.user_attrs.get(f"heartbeat:{owner}", 0.0)
        return time.time() - float(beat) > STALE_S

    def _dead_here(self, host: str, pid: Any) -> bool:
        """Is process ``pid`` of ``host`` known to be gone (only decidable on this host)?"""
        if host != self.host:
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    def _worker_alive(self, frozen) -> bool:
        """Has the trial's worker beaten within :data:`STALE_S` and, on this host, is its
        process still there?"""
        beat = frozen.user_attrs.get(WORKER_BEAT)
        if not isinstance(beat, dict):
            return False
        if time.time() - float(beat.get("time", 0.0)) > STALE_S:
            return False
        return not self._dead_here(str(beat.get("host")), beat.get("pid", 0))


# -- the coordinator ------------------------------------------------------------------
def run_sweep(
    config_path: Path | None,
    space_path: Path,
    out: Path,
    trials: int,
    sampler: str = "tpe",
    workers: int = 1,
    executor: str = "local",
    storage: str | None = None,
    pruner: str = "median",
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
    max_retries: int = 2,
    dask_address: str | None = None,
    cluster_file: Path | None = None,
    console: Console | None = None,
    task: Task | None = None,
    storage_env: str | None = None,
    storage_file: Path | None = None,
    gpus: str = "auto",
    gpus_per_trial: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a sweep of ``trials`` trials into ``out``; returns the summary.

    GPUs: each trial that trains on a GPU is given ``gpus_per_trial`` of them (default 1
    when GPUs are visible; ``gpus``: ``auto``, ``none``, ``N`` or visible indices ``0,2``;
    see :func:`spikeforge.experiments.executors.make_executor`). The trial's store entry
    records where it ran (``placement`` user attribute).

    The store is ``storage`` (a URL), the URL in environment variable ``storage_env`` or
    the one in file ``storage_file`` (at most one; default: ``out/study.db``). Workers
    get the variable's name or the file's path, never a password (see
    :mod:`spikeforge.experiments.credentials`).

    ``task(payload) -> {"state": "complete", "val_accuracy": ..., ...}`` is what a worker
    runs per trial (default :func:`run_trial`, which trains the trial's run folder); it
    must be a picklable module-level function.
    """
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = console or Console(stderr=True)
    out = Path(out).absolute()
    if trials < 1:
        raise SpikeforgeError(f"--trials must be >= 1 (got {trials})")
    if max_retries < 0:
        raise SpikeforgeError(f"--max-retries must be >= 0 (got {max_retries})")
    base = load_config(config_path, overrides)
    space, tree = load_space(space_path, config_path, overrides)
    if sampler not in SAMPLERS:
        raise SpikeforgeError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    _pruner(pruner)
    seed = base.seed if seed is None else seed
    target = min(trials, space.grid_size()) if sampler == "grid" else trials
    _sampler(sampler, space, seed)  # grid sampler: fails now if a range is continuous
    given, ref = storage_from_options(storage, storage_env, storage_file)
    url = given or f"sqlite:///{out / 'study.db'}"
    if given:
        open_storage(given)  # before creating anything
    plan = SweepPlan(json.loads(json.dumps(base.model_dump(mode="json"))), tree, sampler,
                     pruner, seed, url, storage_ref=ref or url)
    pool = make_executor(executor, workers, out, dask_address, cluster_file, gpus=gpus,
                         gpus_per_trial=gpus_per_trial)
    try:
        check_device_for_placement(base.train.device, pool.gpus_per_trial)
        _prepare_folder(out, plan, base)
        if placement_summary(pool):
            console.print(placement_summary(pool))
        study = optuna.create_study(
            storage=open_storage(url), study_name=plan.study_name, direction="maximize",
            sampler=_sampler(sampler, space, seed), pruner=_pruner(pruner), load_if_exists=True)
        study.set_user_attr("space", tree)  # decodes list choices in summaries and reports
        # a resumed sweep continues the sampler's random stream instead of restarting it
        # (a restarted stream repeats the first trials' values)
        done = len(study.get_trials(deepcopy=False))
        if done:
            study.sampler = _sampler(sampler, space, seed + done)
        _coordinate(study, space, plan, out, target, pool, max_retries, console,
                    task or run_trial)
    finally:
        pool.close()
    summary = sweep_summary(study, out)
    with FolderLock(out, "sweep", wait_s=STALE_S):
        write_text_atomic(out / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def _coordinate(study, space: SearchSpace, plan: SweepPlan, out: Path, target: int, pool,
                max_retries: int, console: Console, task: Task) -> None:
    optuna = require_optuna()
    TrialState = optuna.trial.TrialState
    owner = _Owner(study)
    owner.beat(force=True)
    threads = pool.threads
    with FolderLock(out, "sweep", wait_s=STALE_S):  # coordinators adopt one at a time
        orphans = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if owner.is_orphan(t)]
        queue = [optuna.trial.Trial(study, t._trial_id) for t in orphans]
        for trial in queue:  # claimed before the next coordinator looks
            trial.set_user_attr("owner", owner.name)
            _suggest_missing(trial, space.distributions())
    if orphans:
        console.print(f"resuming {len(orphans)} unfinished trial(s): "
                      f"{', '.join(str(t.number) for t in orphans)}")
    running: dict[Any, Any] = {}  # job -> Trial

    def finished() -> int:
        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return len(study.get_trials(deepcopy=False, states=done))

    def submit(trial) -> None:
        trial.set_user_attr("owner", owner.name)
        params = space.overrides(trial.params)
        config = load_config(out / BASE_CONFIG, params).model_dump(mode="json")
        payload = {
            "config": config, "run_dir": str(_trial_dir(out, trial.number)),
            "log": str(out / "logs" / f"trial-{trial.number:04d}.log"),
            "storage": plan.storage_ref, "study_name": plan.study_name,
            "trial_id": trial._trial_id,
            "prune": plan.pruner != "none", "pruner": plan.pruner, "threads": threads,
            "label": f"trial{trial.number}", "params": params, "number": trial.number,
            "gpus_per_trial": (pool.gpus_per_trial
                               if pool.gpus_per_trial and wants_gpu(config) else 0),
        }  # fmt: skip
        trial.set_user_attr("run_dir", payload["run_dir"])
        running[pool.submit(task, payload)] = trial

    columns = (TextColumn("[bold]sweep[/bold]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("trials  best {task.fields[best]}"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("sweep", total=target, completed=min(finished(), target),
                                 best=_best_text(study))
        while True:
            while len(running) < pool.slots:
                if queue:
                    submit(queue.pop(0))
                elif len(study.get_trials(deepcopy=False)) < target:
                    submit(study.ask(space.distributions()))
                else:
                    break
            if not running:
                break
            time.sleep(0.2)
            owner.beat()
            for job in [j for j in running if j.done()]:
                trial = running.pop(job)
                ok, value = job.outcome()
                if ok:
                    _record_success(study, trial, value)
                else:
                    errors = [*trial.user_attrs.get("errors", []), value.splitlines()[0]]
                    trial.set_user_attr("errors", errors)
                    if len(errors) <= max_retries:
                        console.print(f"[yellow]trial {trial.number} failed ({errors[-1]}); "
                                      f"retry {len(errors)}/{max_retries}[/yellow]")
                        submit(trial)
                    else:
                        trial.set_user_attr("error", value)
                        study.tell(trial, state=TrialState.FAIL)
                        console.print(f"[red]trial {trial.number} failed {len(errors)} times; "
                                      f"giving up: {errors[-1]}[/red]")
                progress.update(bar, completed=min(finished(), target), best=_best_text(study))


def _suggest_missing(trial, distributions: dict[str, Any]) -> None:
    """Sample the parameters an adopted trial lacks: a coordinator killed inside
    ``study.ask`` leaves a RUNNING trial whose parameters were not all stored (each is its
    own transaction), and running it so would train the base config under its number."""
    dists = require_optuna().distributions
    for name, dist in distributions.items():
        if name in trial.params:
            continue
        if isinstance(dist, dists.CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, dists.IntDistribution):
            trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _record_success(study, trial, result: dict[str, Any]) -> None:
    TrialState = require_optuna().trial.TrialState
    if result["state"] == "pruned":
        trial.set_user_attr("pruned_after_epoch", result.get("epoch"))
        if result.get("placement") is not None:
            trial.set_user_attr("placement", result["placement"])
        study.tell(trial, state=TrialState.PRUNED)
        return
    for key in ("test_accuracy", "test_loss", "train_seconds", "hidden_rate_hz",
                "placement"):
        if result.get(key) is not None:
            trial.set_user_attr(key, result[key])
    study.tell(trial, float(result["val_accuracy"]))


def _best_text(study) -> str:
    try:
        best = study.best_trial
    except ValueError:
        return "-"
    return f"#{best.number} val {best.value:.3f}"


def load_sweep(out: Path, storage: str | None = None):
    """Open an existing sweep folder's study (for reports); returns (study, sweep record)."""
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(out)
    path = out / SWEEP_FILE
    if not path.is_file():
        raise SpikeforgeError(f"{out} is not a sweep folder (no {SWEEP_FILE})")
    record = json.loads(path.read_text())
    url = storage or stored_storage_url(record["storage"], out)
    if "***" in url:
        raise SpikeforgeError(f"{out} uses a password-protected storage; pass it with "
                              "--storage-env NAME or --storage-file PATH")
    study = optuna.load_study(study_name=record["study_name"], storage=open_storage(url))
    return study, record


def sweep_summary(study, out: Path) -> dict[str, Any]:
    """Counts per state and the best trial's value, parameters and run folder."""
    TrialState = require_optuna().trial.TrialState
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    summary: dict[str, Any] = {"sweep_dir": str(out), "n_trials": len(trials),
                               **{f"n_{k}": v for k, v in counts.items() if v}}
    try:
        best = study.best_trial
    except ValueError:
        return summary
    summary.update(best_trial=best.number, best_val_accuracy=best.value,
                   best_test_accuracy=best.user_attrs.get("test_accuracy"),
                   best_params=param_decoder(study)(best.params),
                   best_run_dir=best.user_attrs.get("run_dir"))
    return summary


def param_decoder(study) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A function from a trial's parameters to config values: list choices
    (``model.hidden``), which travel through Optuna as JSON text, decoded with the space
    stored with the study (read once, for all of its trials)."""
    tree = study.user_attrs.get("space")
    if not isinstance(tree, dict):
        return dict
    space = stored_space(tree)
    known = {p.path for p in space.params}

    def decode(params: dict[str, Any]) -> dict[str, Any]:
        return {**params, **space.overrides({k: v for k, v in params.items() if k in known})}

    return decode


def trial_table(study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, params, test accuracy, errors."""
    rows, decode = [], param_decoder(study)
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "number": t.number, "state": t.state.name, "value": t.value,
            "params": decode(t.params),
            "test_accuracy": t.user_attrs.get("test_accuracy"),
            "errors": t.user_attrs.get("errors", []), "run_dir": t.user_attrs.get("run_dir"),
            "placement": t.user_attrs.get("placement"),
            "seconds": (t.duration.total_seconds() if t.duration else None),
        })  # fmt: skip
    return rows


def parse_space_text(text: str, base_config: Path | None = None) -> SearchSpace:
    """Validate a search space given as YAML text (handy in notebooks and tests)."""
    return parse_space(yaml.safe_load(text), base_config)
