"""Cross-validation: leave-one-speaker-out or K folds over the training split, then a final
run on all training data that is tested on the test split.

CV folder ``OUT/``::

    cv.json              what this CV is (config, fold scheme, seed, fold sizes)
    base_config.yaml     the resolved config of every fold and of the final run
    folds/fold-00/       a normal run folder per fold (its validation set is the held-out
                         part), plus ``fold.json``: held-out predictions, labels, speakers
    final/               run folder trained on the whole training split, tested on test
    errors.json          failed attempts per job (retried up to --max-retries)
    cv_results.json      per-fold and per-speaker accuracy, mean ± std, final test result

A fold is complete when its ``fold.json`` exists (written atomically after training), so
re-running the command skips completed folds and resumes a partly trained one from its
checkpoint.

``only_folds`` (``--fold I``) trains just those folds, e.g. one per SLURM array task:
several such commands may share the folder at once (each fold's run folder is locked by
its trainer, failed attempts go to ``errors-fold-II.json``); the same command without
``--fold`` then trains what is missing, the final run, and writes ``cv_results.json``.

GPUs: every fold (and the final run) that trains on a GPU is given its own
(``gpus_per_trial``, see :func:`spikeforge.experiments.executors.make_executor`);
``fold.json`` and ``cv_results.json`` record where each fold ran (``placement``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from spikeforge.atomic import TEMP_MARK, remove_stale_temps, write_text_atomic
from spikeforge.data import DatasetSplits, SpikeDataset
from spikeforge.data.registry import load_data
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import (
    RunConfig,
    dump_config,
    load_config,
    semantic_config,
)
from spikeforge.experiments.executors import (
    Executor,
    check_device_for_placement,
    limit_threads,
    make_executor,
    placement_summary,
    placement_text,
    wants_gpu,
)
from spikeforge.folder_lock import LOCK_FILE, FolderLock

CV_FILE, BASE_CONFIG, RESULTS, ERRORS, FOLD_FILE = (
    "cv.json", "base_config.yaml", "cv_results.json", "errors.json", "fold.json")


def load_splits(config: RunConfig) -> DatasetSplits:
    """The dataset splits a run with ``config`` trains on (same call as the runner)."""
    return load_data(config.data)


@dataclass(frozen=True)
class Fold:
    """One fold: ``held_out`` indices into the training split (its validation set)."""

    index: int
    held_out: np.ndarray
    speakers: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"fold-{self.index:02d}"


def make_folds(train: SpikeDataset, scheme: str, seed: int) -> list[Fold]:
    """Folds over the training split.

    ``scheme``: ``"loso"`` (one fold per training speaker, via
    :func:`spikeforge.data.speakers.loso_folds`) or an integer K >= 2 as text: K
    speaker-disjoint folds when the dataset has speakers (grouped K-fold), otherwise
    stratified K-fold with ``seed``.
    """
    speakers = train.speakers
    if scheme == "loso":
        from spikeforge.data.speakers import loso_folds

        if speakers is None:
            raise SpikeforgeError("--folds loso needs a dataset with speaker ids (e.g. SHD); "
                                  "use --folds K for this dataset")
        return [Fold(i, held, (spk,)) for i, (spk, _, held) in enumerate(loso_folds(train))]
    try:
        k = int(scheme)
    except ValueError:
        raise SpikeforgeError(f"--folds must be 'loso' or an integer K >= 2, not {scheme!r}"
                              ) from None
    if k < 2:
        raise SpikeforgeError(f"--folds K needs K >= 2 (got {k})")
    if speakers is not None:
        from sklearn.model_selection import GroupKFold

        n_speakers = np.unique(speakers).size
        if k > n_speakers:
            raise SpikeforgeError(f"--folds {k}: the training split has only {n_speakers} "
                                  f"speakers; use K <= {n_speakers} or --folds loso")
        splitter = GroupKFold(n_splits=k)
        parts = [held for _, held in splitter.split(np.zeros(len(train)), train.labels,
                                                    speakers)]
        return [Fold(i, np.sort(held), tuple(int(s) for s in np.unique(speakers[held])))
                for i, held in enumerate(parts)]
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(train.labels) if len(train) else np.zeros(1, dtype=np.int64)
    smallest = int(counts[counts > 0].min()) if counts.any() else 0
    if k > smallest:
        raise SpikeforgeError(f"--folds {k}: the smallest class has only {smallest} training "
                              f"samples; use K <= {smallest}")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [Fold(i, np.sort(held), ()) for i, (_, held) in
            enumerate(splitter.split(np.zeros(len(train)), train.labels))]


def fold_splits(splits: DatasetSplits, held_out: np.ndarray) -> DatasetSplits:
    """Train on the training split minus ``held_out``; validate on ``held_out``."""
    keep = np.setdiff1d(np.arange(len(splits.train)), held_out)
    return DatasetSplits(splits.name, splits.train.subset(keep),
                         splits.train.subset(held_out), splits.test)


# -- jobs run by workers --------------------------------------------------------------
def _train_with_log(payload: dict[str, Any], splits: DatasetSplits) -> dict[str, Any]:
    from spikeforge.experiments.runner import train_run

    limit_threads(payload.get("threads"))
    log_path = Path(payload["log"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    config = RunConfig.model_validate(payload["config"])
    with open(log_path, "a") as log:
        log.write(f"--- attempt pid {os.getpid()}{placement_text(payload.get('placement'))} "
                  f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        log.flush()
        return train_run(config, Path(payload["run_dir"]), console=Console(file=log, width=120),
                         splits=splits)


def run_fold(payload: dict[str, Any]) -> dict[str, Any]:
    """Train one fold (resuming), then record its held-out predictions in ``fold.json``."""
    from spikeforge.experiments import run_folder as rf
    from spikeforge.experiments.loading import run_trainer
    from spikeforge.train.checkpoint import load_checkpoint

    config = RunConfig.model_validate(payload["config"])
    held_out = np.asarray(payload["held_out"], dtype=np.int64)
    splits = fold_splits(load_splits(config), held_out)
    results = _train_with_log(payload, splits)
    run_dir = Path(payload["run_dir"])
    trainer = run_trainer(config, splits)
    trainer.load_state(load_checkpoint(run_dir / rf.MODEL))
    evaluation = trainer.evaluate(splits.val)
    speakers = splits.val.speakers
    record = {
        "fold": payload["fold"], "held_out_speakers": payload["speakers"],
        "n_train": len(splits.train), "n_held_out": len(splits.val),
        "accuracy": evaluation.accuracy, "loss": evaluation.loss,
        "test_accuracy": results["test_accuracy"],
        "predictions": evaluation.predictions.tolist(), "labels": evaluation.labels.tolist(),
        "speakers": None if speakers is None else speakers.tolist(),
        "placement": payload.get("placement"),
    }  # fmt: skip
    write_text_atomic(run_dir / FOLD_FILE, json.dumps(record) + "\n")
    return record


def run_final(payload: dict[str, Any]) -> dict[str, Any]:
    """Train on the whole training split (validation split as in a normal run); test."""
    config = RunConfig.model_validate(payload["config"])
    return _train_with_log(payload, load_splits(config))


# -- the coordinator ------------------------------------------------------------------
_CREATION_LEFTOVERS = {"slurm-logs", BASE_CONFIG, LOCK_FILE}
"""What a CV folder may hold before ``cv.json`` exists: a creator killed before writing
it (``cv.json`` is written last), or the SLURM executor's log folder."""


def _same_cv(saved: dict[str, Any], record: dict[str, Any]) -> bool:
    """Same folds, seed and semantic config (see :func:`semantic_config`)?"""
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        return False
    rest = {k: v for k, v in saved.items() if k != "config"}
    want = {k: v for k, v in json.loads(json.dumps(record)).items() if k != "config"}
    try:
        return rest == want and (semantic_config(saved["config"])
                                 == semantic_config(record["config"]))
    except SpikeforgeError:
        return False


def _prepare_folder(out: Path, record: dict[str, Any], base: RunConfig) -> None:
    """Create the CV folder (``cv.json`` last, so a kill leaves a folder this function
    completes on the next run) or check that it holds this same cross-validation."""
    path = out / CV_FILE
    if path.is_file():
        if not _same_cv(json.loads(path.read_text()), record):
            raise SpikeforgeError(f"{out} holds a different cross-validation (config, folds or "
                                  "seed differ); use a new --out")
        return
    if out.exists() and {p.name for p in out.iterdir()
                         if TEMP_MARK not in p.name} - _CREATION_LEFTOVERS:
        if path.is_file():  # another command (--fold array task) created it just now
            return _prepare_folder(out, record, base)
        raise SpikeforgeError(f"output folder {out} exists but is not a cross-validation; "
                              "choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / BASE_CONFIG, dump_config(base))
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")


def run_jobs(pool: Executor, jobs: dict[str, tuple[Callable, dict[str, Any]]],
             errors_path: Path, max_retries: int, console: Console, title: str
             ) -> dict[str, dict[str, Any]]:
    """Run named jobs on ``pool`` with at most ``pool.slots`` at once; failed attempts are
    appended to ``errors_path`` (JSON) and retried up to ``max_retries`` times.

    Returns the results by name; raises :class:`SpikeforgeError` if a job fails for good.
    """
    errors: dict[str, list[str]] = (json.loads(errors_path.read_text())
                                    if errors_path.is_file() else {})
    waiting, running, results = list(jobs), {}, {}
    attempts: dict[str, int] = {}
    columns = (TextColumn(f"[bold]{title}[/bold]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[last]}"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(title, total=len(jobs), last="")
        while waiting or running:
            while waiting and len(running) < pool.slots:
                name = waiting.pop(0)
                fn, payload = jobs[name]
                running[pool.submit(fn, payload)] = name
            time.sleep(0.2)
            for job in [j for j in running if j.done()]:
                name = running.pop(job)
                ok, value = job.outcome()
                if ok:
                    results[name] = value
                    accuracy = value.get("accuracy", value.get("test_accuracy"))
                    progress.update(task, advance=1, last=f"{name} {accuracy:.3f}")
                    continue
                errors.setdefault(name, []).append(value.splitlines()[0])
                write_text_atomic(errors_path, json.dumps(errors, indent=2) + "\n")
                attempts[name] = attempts.get(name, 0) + 1
                if attempts[name] > max_retries:
                    for other in running:
                        other.cancel()
                    raise SpikeforgeError(f"{name} failed {attempts[name]} times (last: "
                                          f"{errors[name][-1]}); see {errors_path}, fix it and "
                                          "re-run the same command to resume")
                console.print(f"[yellow]{name} failed ({errors[name][-1]}); retry "
                              f"{attempts[name]}/{max_retries}[/yellow]")
                waiting.append(name)
    return results


def run_cv(
    config_path: Path | None,
    out: Path,
    folds: str = "5",
    workers: int = 1,
    executor: str = "local",
    overrides: dict[str, Any] | None = None,
    max_retries: int = 2,
    final: bool = True,
    dask_address: str | None = None,
    cluster_file: Path | None = None,
    console: Console | None = None,
    gpus: str = "auto",
    gpus_per_trial: int | None = None,
    only_folds: list[int] | None = None,
) -> dict[str, Any]:
    """Run (or resume) cross-validation into ``out``; returns the summary (also written to
    ``OUT/cv_results.json``).

    ``only_folds``: train just these fold indices (0-based) and return their records
    (``folds``, ``n_complete`` of ``n_folds``); no final run, no ``cv_results.json``.
    ``gpus`` / ``gpus_per_trial``: GPU placement, one group per fold by default
    (:func:`spikeforge.experiments.executors.make_executor`).
    """
    console = console or Console(stderr=True)
    out = Path(out).absolute()
    if max_retries < 0:
        raise SpikeforgeError(f"--max-retries must be >= 0 (got {max_retries})")
    base = load_config(config_path, overrides)
    splits = load_splits(base)
    fold_list = make_folds(splits.train, str(folds), base.seed)
    if only_folds is not None:
        bad = sorted({i for i in only_folds if not 0 <= i < len(fold_list)})
        if bad or not only_folds:
            raise SpikeforgeError(f"--fold {bad[0] if bad else '(none)'}: this cross-validation "
                                  f"has {len(fold_list)} folds, 0 .. {len(fold_list) - 1}")
    record = {"config": base.model_dump(mode="json"), "folds": str(folds), "seed": base.seed,
              "n_folds": len(fold_list),
              "fold_sizes": [int(f.held_out.size) for f in fold_list],
              "fold_speakers": [list(f.speakers) for f in fold_list]}
    pool = make_executor(executor, workers, out, dask_address, cluster_file, gpus=gpus,
                         gpus_per_trial=gpus_per_trial)
    # --fold commands share the folder (each fold's run folder has its own lock)
    lock = FolderLock(out, "cross-validation") if only_folds is None else None
    try:
        check_device_for_placement(base.train.device, pool.gpus_per_trial)
        _prepare_folder(out, record, base)
        if lock is not None:
            lock.acquire()
            remove_stale_temps(out)
        if placement_summary(pool):
            console.print(placement_summary(pool))
        threads = pool.threads
        config = base.model_dump(mode="json")
        gpus_each = pool.gpus_per_trial if pool.gpus_per_trial and wants_gpu(config) else 0
        done: dict[str, dict[str, Any]] = {}
        jobs: dict[str, tuple[Callable, dict[str, Any]]] = {}
        chosen = [f for f in fold_list if only_folds is None or f.index in only_folds]
        for fold in chosen:
            run_dir = out / "folds" / fold.name
            if (run_dir / FOLD_FILE).is_file():
                done[fold.name] = json.loads((run_dir / FOLD_FILE).read_text())
                continue
            jobs[fold.name] = (run_fold, {
                "config": config, "fold": fold.index, "held_out": fold.held_out.tolist(),
                "speakers": list(fold.speakers), "run_dir": str(run_dir), "threads": threads,
                "log": str(out / "logs" / f"{fold.name}.log"), "label": fold.name,
                "gpus_per_trial": gpus_each})
        if final and only_folds is None and not (out / "final" / "results.json").is_file():
            jobs["final"] = (run_final, {"config": config, "run_dir": str(out / "final"),
                                         "threads": threads, "label": "final",
                                         "log": str(out / "logs" / "final.log"),
                                         "gpus_per_trial": gpus_each})
        if done:
            console.print(f"skipping {len(done)} completed fold(s): {', '.join(sorted(done))}")
        errors = (out / ERRORS if only_folds is None else
                  out / f"errors-{'-'.join(f.name for f in chosen)}.json")
        done.update(run_jobs(pool, jobs, errors, max_retries, console, "cv"))
        if only_folds is not None:
            complete = sum((out / "folds" / f.name / FOLD_FILE).is_file() for f in fold_list)
            return {"cv_dir": str(out), "n_folds": len(fold_list), "n_complete": complete,
                    "folds": [_fold_row(done[f.name]) for f in chosen]}
        summary = summarise(out, [done[f.name] for f in fold_list], splits.train.n_classes)
        write_text_atomic(out / RESULTS, json.dumps(summary, indent=2) + "\n")
    finally:
        pool.close()
        if lock is not None:
            lock.release()
    return summary


def _fold_row(record: dict[str, Any]) -> dict[str, Any]:
    """A fold's line in ``cv_results.json``: index, held-out speakers, accuracy, sizes and
    where it ran (``placement``, absent for folds recorded before placement existed)."""
    row = {"fold": record["fold"], "speakers": record["held_out_speakers"],
           "accuracy": record["accuracy"], "n_held_out": record["n_held_out"],
           "n_train": record["n_train"]}
    if record.get("placement"):
        row["placement"] = record["placement"]
    return row


def summarise(out: Path, records: list[dict[str, Any]], n_classes: int) -> dict[str, Any]:
    """Mean ± std (sample std, ddof=1) of held-out accuracy over folds, per-speaker
    accuracy over all held-out samples, the pooled confusion matrix and the final run."""
    accuracies = np.array([r["accuracy"] for r in records], dtype=float)
    labels = np.concatenate([np.asarray(r["labels"], dtype=np.int64) for r in records])
    predictions = np.concatenate([np.asarray(r["predictions"], dtype=np.int64)
                                  for r in records])
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_speaker: dict[str, dict[str, float]] = {}
    if all(r["speakers"] is not None for r in records):
        speakers = np.concatenate([np.asarray(r["speakers"], dtype=np.int64) for r in records])
        for spk in np.unique(speakers):
            mask = speakers == spk
            per_speaker[str(int(spk))] = {"accuracy": float(np.mean(labels[mask]
                                                                    == predictions[mask])),
                                          "n": int(mask.sum())}
    summary: dict[str, Any] = {
        "cv_dir": str(out), "n_folds": len(records),
        "mean_accuracy": float(accuracies.mean()),
        "std_accuracy": float(accuracies.std(ddof=1)) if len(records) > 1 else 0.0,
        "folds": [_fold_row(r) for r in records],
        "per_speaker": per_speaker, "confusion": confusion.tolist(),
    }  # fmt: skip
    final = Path(out) / "final" / "results.json"
    if final.is_file():
        result = json.loads(final.read_text())
        summary["final_test_accuracy"] = result["test_accuracy"]
        summary["final_val_accuracy"] = result["val_accuracy"]
    return summary
