"""``spikeforge sweep``, ``spikeforge cv`` and ``spikeforge report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from spikeforge.commands import SET_HELP

Executor = Annotated[str, typer.Option(help="Where trials run: local, dask or slurm.")]
Workers = Annotated[int, typer.Option(help="Trials/folds run at the same time.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE",
                                                  help=SET_HELP)]
DaskAddress = Annotated[str | None, typer.Option(
    help="Dask scheduler address (default: start a LocalCluster).")]
Cluster = Annotated[Path | None, typer.Option(
    help="YAML with a 'slurm:' section (partition, account, time, gpus_per_trial, ...) "
         "for --executor slurm (default: none).")]
Retries = Annotated[int, typer.Option(help="Retries of a failed trial/fold.")]
Gpus = Annotated[str, typer.Option(
    help="GPUs of this machine to place trials/folds on (local and a Dask LocalCluster): "
         "auto (every visible one; none visible: the CPU, nothing changes), none, N (the "
         "first N) or visible indices such as 0,2. Each worker gets its own "
         "CUDA_VISIBLE_DEVICES.")]
GpusPerTrial = Annotated[int | None, typer.Option(
    help="GPUs given to each trial/fold (default: 1 when GPUs are visible; slurm: "
         "gpus_per_trial of --cluster; dask with --dask-address: 1 when a worker "
         "advertises GPU resources). 0: no placement.")]
AsJson = Annotated[bool, typer.Option("--json", help="Last stdout line: JSON result.")]
StorageEnv = Annotated[str | None, typer.Option(
    help="Read the storage URL from this environment variable (keeps a password out of "
         "ps and of task payloads; workers read the same variable; default: none).")]
StorageFile = Annotated[Path | None, typer.Option(
    help="Read the storage URL from this file (not readable by other users: chmod 600; "
         "workers read the same path; default: none).")]


def _overrides(items: list[str] | None, config: Path | None) -> dict:
    """The ``--set`` overrides, after checking that they and ``config`` make a valid base
    config (a bad value fails here, before the sweep/CV machinery and torch load)."""
    from spikeforge.experiments.config import load_config, parse_override

    overrides = dict(parse_override(item) for item in (items or []))
    load_config(config, overrides)
    return overrides


def _default_out(kind: str, config: Path | None, overrides: dict) -> Path:
    stem = config.stem if config is not None else overrides.get("data.name", "digits")
    return Path(f"{kind}s") / str(stem)


def sweep(
    space: Annotated[Path, typer.Option(help="SPACE.yaml: config paths -> ranges/choices.")],
    config: Annotated[Path | None, typer.Argument(help="Base YAML config (default: built-in "
                                                  "defaults).")] = None,
    trials: Annotated[int, typer.Option(help="Total trials in the sweep.")] = 20,
    sampler: Annotated[str, typer.Option(help="grid, random or tpe.")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median (prune on validation accuracy) or "
                                        "none.")] = "median",
    workers: Workers = 1,
    executor: Executor = "local",
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL (default: SQLite "
                                                "in the sweep folder), e.g. "
                                                "postgresql://user@host/db; a password "
                                                "here is visible in ps: use --storage-env "
                                                "or --storage-file.")] = None,
    storage_env: StorageEnv = None,
    storage_file: StorageFile = None,
    seed: Annotated[int | None, typer.Option(help="Sampler seed (default: config seed).")
                    ] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep folder (default sweeps/<config>).")
                   ] = None,
    set_: SetOpt = None,
    max_retries: Retries = 2,
    dask_address: DaskAddress = None,
    cluster: Cluster = None,
    gpus: Gpus = "auto",
    gpus_per_trial: GpusPerTrial = None,
    as_json: AsJson = False,
) -> None:
    """Hyper-parameter sweep with Optuna; re-running the same command resumes it."""
    overrides = _overrides(set_, config)
    from spikeforge.experiments.sweep import run_sweep

    folder = out or _default_out("sweep", config, overrides)
    summary = run_sweep(config, space, folder, trials, sampler=sampler, workers=workers,
                        executor=executor, storage=storage, storage_env=storage_env,
                        storage_file=storage_file, pruner=pruner, seed=seed,
                        overrides=overrides, max_retries=max_retries,
                        dask_address=dask_address, cluster_file=cluster, gpus=gpus,
                        gpus_per_trial=gpus_per_trial)
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        print(f"{key}: {value}")


def cv(
    config: Annotated[Path | None, typer.Argument(
        help="Base YAML config (default: built-in defaults).")] = None,
    folds: Annotated[str, typer.Option(help="'loso' (leave one speaker out) or K.")] = "5",
    workers: Workers = 1,
    executor: Executor = "local",
    out: Annotated[Path | None, typer.Option(help="CV folder (default cvs/<config>).")
                   ] = None,
    set_: SetOpt = None,
    final: Annotated[bool, typer.Option(help="Also train on all training data and test.")
                     ] = True,
    max_retries: Retries = 2,
    dask_address: DaskAddress = None,
    cluster: Cluster = None,
    gpus: Gpus = "auto",
    gpus_per_trial: GpusPerTrial = None,
    fold: Annotated[list[int] | None, typer.Option(
        "--fold", metavar="I", help="Train only fold I (0-based; repeatable), e.g. "
        "--fold $SLURM_ARRAY_TASK_ID: several such commands may share --out; the same "
        "command without --fold then collects (default: every fold).")] = None,
    as_json: AsJson = False,
) -> None:
    """Cross-validation over the training split; re-running skips completed folds."""
    overrides = _overrides(set_, config)
    from spikeforge.experiments.cv import run_cv

    folder = out or _default_out("cv", config, overrides)
    summary = run_cv(config, folder, folds=folds, workers=workers, executor=executor,
                     overrides=overrides, max_retries=max_retries, final=final,
                     dask_address=dask_address, cluster_file=cluster, gpus=gpus,
                     gpus_per_trial=gpus_per_trial, only_folds=fold)
    if as_json:
        print(json.dumps({k: v for k, v in summary.items() if k != "confusion"}))
        return
    for row in summary["folds"]:
        who = f" speakers {row['speakers']}" if row["speakers"] else ""
        print(f"fold {row['fold']}{who}: {row['accuracy']:.4f} (n={row['n_held_out']})")
    if "mean_accuracy" not in summary:  # --fold: a part of the folds
        print(f"{summary['n_complete']}/{summary['n_folds']} folds complete; run the same "
              "command without --fold to train the rest and the final run and collect")
        return
    print(f"accuracy: {summary['mean_accuracy']:.4f} ± {summary['std_accuracy']:.4f} "
          f"over {summary['n_folds']} folds")
    if "final_test_accuracy" in summary:
        print(f"final test accuracy: {summary['final_test_accuracy']:.4f}")


def report(
    folder: Annotated[Path, typer.Argument(help="Sweep or CV folder.")],
    storage: Annotated[str | None, typer.Option(help="Storage URL if the sweep's has a "
                                                "password (visible in ps: prefer "
                                                "--storage-env or --storage-file; "
                                                "default: the folder's own).")] = None,
    storage_env: StorageEnv = None,
    storage_file: StorageFile = None,
) -> None:
    """Write report.html and PNG figures for a sweep or CV folder."""
    from spikeforge.experiments.credentials import storage_from_options
    from spikeforge.experiments.report import write_report

    url, _ = storage_from_options(storage, storage_env, storage_file)
    print(write_report(folder, storage=url))


def register(app: typer.Typer) -> None:
    app.command()(sweep)
    app.command()(cv)
    app.command()(report)
