"""Opt-in fault injection at the write points of ``train``, ``cv`` and ``sweep``.

Off unless an environment variable is set; when off, :func:`fault_point` returns after
one comparison with ``None`` (no environment, file or clock access).

``SPIKEFORGE_FAULT_AT=<label>:<n>``
    The process at write point ``label`` (one of :data:`WRITE_POINTS`) kills itself and
    the command that started it with SIGKILL on the ``n``-th hit of that label (``n`` >= 1,
    default 1). Hits are counted over the whole command, its spawned local workers
    included (they share a counter file), so with one worker the ``n``-th hit is the same
    write in every run of the same command.
``SPIKEFORGE_FAULT_COUNTS=<path>`` (optional)
    The hit counter file; without it the command's first process creates one in the
    temporary folder (left there, as the command is killed).
``SPIKEFORGE_FAULT_LOG=<path>``
    Every hit is appended to ``path`` as one line ``label``; with no fault set this
    records which write points a command passes, in order.

The labels form a closed list. An atomic write (:func:`spikeforge.atomic.atomic_path`)
passes two points named after the target file: ``<file>:written`` once the temporary
file is complete and fsynced (before the rename) and ``<file>:renamed`` after the rename
and the folder's fsync. A target file not in :data:`ATOMIC_FILES` is logged as
``unlisted:<file>:<phase>`` (and can never be a fault target), so a test can assert that
a command writes nothing outside the list. Not write points: the ``.lock`` holder line
(:mod:`spikeforge.folder_lock`) and the append-only console logs of cv and sweep workers
(``logs/*.log``), which no rerun reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
from pathlib import Path

from spikeforge.errors import SpikeforgeError

FAULT_AT_ENV = "SPIKEFORGE_FAULT_AT"
FAULT_LOG_ENV = "SPIKEFORGE_FAULT_LOG"
_ROOT_ENV = "SPIKEFORGE_FAULT_ROOT_PID"
FAULT_COUNTS_ENV = "SPIKEFORGE_FAULT_COUNTS"

PHASES = ("written", "renamed")
"""The two points of every atomic write: before and after its rename."""

ATOMIC_FILES: dict[str, str] = {
    "metrics.jsonl": "train: a run folder's per-epoch metrics, rewritten after every epoch",
    "checkpoint.pt": "train: a run folder's latest epoch (model + optimizer), every epoch",
    "model.pt": "train: a run folder's final weights",
    "learning_curves.png": "train: learning-curve plot",
    "raster.png": "train: spike raster plot",
    "delays.png": "train: delay histograms (only for models with synaptic delays)",
    "speaker_report.json": "train: per-speaker test report (only for datasets with speakers)",
    "confusion_matrix.png": "train: test confusion plot (only for datasets with speakers)",
    "speaker_accuracy.png": "train: per-speaker test accuracy (only for datasets with "
                            "speakers)",
    "val_speaker_report.json": "train: per-speaker validation report (only for datasets "
                               "with speakers)",
    "val_confusion_matrix.png": "train: validation confusion plot (only for datasets with "
                                "speakers)",
    "val_speaker_accuracy_epochs.png": "train: per-speaker validation accuracy per epoch "
                                       "(only for datasets with speakers)",
    "receptive_fields.png": "train: STDP receptive fields (only for train.method=stdp)",
    "weight_distribution.png": "train: STDP weight histogram (only for train.method=stdp)",
    "results.json": "train: a run folder's test results (marks the run complete)",
    "base_config.yaml": "cv, sweep: the resolved base config",
    "cv.json": "cv: what the cross-validation is (written last when creating the folder)",
    "fold.json": "cv: a fold's held-out predictions (marks the fold complete)",
    "errors.json": "cv: failed attempts per job (only after a failed attempt; --fold runs "
                   "write errors-fold-II.json, logged as unlisted)",
    "cv_results.json": "cv: the summary over folds and the final run",
    ".sweep.json.new": "sweep: sweep.json's temporary twin; sweep.json is hard-linked to it "
                       "before the rename (so its 'written' point follows sweep.json)",
    "summary.json": "sweep: best trial and counts",
}
"""Target file names of the atomic writes of train, cv and sweep, with what they hold."""

OTHER_POINTS: dict[str, str] = {
    "run-folder:staged": "train: config.yaml and run.json written into the staging folder, "
                         "before the rename that creates the run folder",
    "run-folder:renamed": "train: the run folder created (after the rename and fsync)",
    "study.db:before-commit": "sweep: a transaction of the Optuna store about to commit",
    "study.db:after-commit": "sweep: a transaction of the Optuna store committed",
}
"""Write points that are not atomic file writes."""

WRITE_POINTS: tuple[str, ...] = (
    *OTHER_POINTS,
    *(f"{name}:{phase}" for name in ATOMIC_FILES for phase in PHASES),
)
"""Every label :func:`fault_point` is called with by train, cv and sweep (closed list)."""

CONDITIONAL_POINTS: frozenset[str] = frozenset(
    f"{name}:{phase}" for name in ATOMIC_FILES for phase in PHASES
    if "(only" in ATOMIC_FILES[name])
"""Write points passed only by delay models, datasets with speakers, STDP training or a
failed CV attempt (none of them by the tiny digits runs of the fault-injection tests)."""


class _State:
    """What the environment asked for (read once per process)."""

    def __init__(self, label: str | None, nth: int, log: Path | None, counts: Path | None,
                 root: int, error: str | None = None):
        self.label, self.nth, self.log, self.counts, self.root = label, nth, log, counts, root
        self.error = error


_STATE: _State | None = None


def _parse(spec: str) -> tuple[str, int]:
    label, _, count = spec.rpartition(":")
    if not label or not count.isdigit():
        label, count = spec, "1"
    if label not in WRITE_POINTS:
        raise SpikeforgeError(f"{FAULT_AT_ENV}={spec}: {label!r} is not a write point; choose "
                              "one of spikeforge.fault_injection.WRITE_POINTS")
    if int(count) < 1:
        raise SpikeforgeError(f"{FAULT_AT_ENV}={spec}: the hit number must be >= 1")
    return label, int(count)


def configure(environ: dict[str, str] | None = None) -> None:
    """(Re)read the fault settings from ``environ`` (default ``os.environ``). Done once at
    import; the first process of a command records itself as the one to kill and creates
    the shared hit counter, both passed to its workers through ``os.environ``. A malformed
    ``SPIKEFORGE_FAULT_AT`` is raised (:class:`SpikeforgeError`) by the first
    :func:`fault_point`, not here."""
    global _STATE
    env = os.environ if environ is None else environ
    spec, log = env.get(FAULT_AT_ENV, ""), env.get(FAULT_LOG_ENV, "")
    if not spec and not log:
        _STATE = None
        return
    try:
        label, nth = _parse(spec) if spec else (None, 0)
    except SpikeforgeError as exc:
        _STATE = _State(None, 0, None, None, os.getpid(), error=str(exc))
        return
    counts = None
    if label is not None:
        if not env.get(FAULT_COUNTS_ENV):
            fd, name = tempfile.mkstemp(prefix="spikeforge-fault-counts-")
            os.close(fd)
            env[FAULT_COUNTS_ENV] = name
        counts = Path(env[FAULT_COUNTS_ENV])
    if not env.get(_ROOT_ENV):
        env[_ROOT_ENV] = str(os.getpid())
    _STATE = _State(label, nth, Path(log) if log else None, counts, int(env[_ROOT_ENV]))


def _append(path: Path, line: str) -> int:
    """Append ``line`` to ``path`` under an exclusive lock; return how many lines equal to
    it the file holds afterwards."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        seen = sum(1 for old in handle if old.rstrip("\n") == line)
        handle.write(line + "\n")
        handle.flush()
        return seen + 1


def fault_point(label: str) -> None:
    """A write point: log it (``SPIKEFORGE_FAULT_LOG``) and, on the chosen hit of the
    chosen label (``SPIKEFORGE_FAULT_AT``), SIGKILL the command and this process."""
    if _STATE is None:
        return
    if _STATE.error is not None:
        raise SpikeforgeError(_STATE.error)
    if _STATE.log is not None:
        _append(_STATE.log, label)
    if label != _STATE.label or _STATE.counts is None:
        return
    if _append(_STATE.counts, label) == _STATE.nth:
        if _STATE.root != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(_STATE.root, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_label(path: Path, phase: str) -> str:
    """The write point of an atomic write of ``path`` at ``phase`` (see :data:`PHASES`)."""
    name = Path(path).name
    return f"{name}:{phase}" if name in ATOMIC_FILES else f"unlisted:{name}:{phase}"


def is_armed() -> bool:
    """Is fault injection or its log on in this process?"""
    return _STATE is not None



def watch_commits(storage):
    """Make the transactions of Optuna RDB ``storage`` write points (``study.db:
    before-commit`` and ``study.db:after-commit``, whatever its database) when fault
    injection is on; returns ``storage`` (unchanged when off)."""
    if _STATE is None:
        return storage
    from sqlalchemy import event

    session = storage.scoped_session
    event.listen(session, "before_commit", lambda _s: fault_point("study.db:before-commit"))
    event.listen(session, "after_commit", lambda _s: fault_point("study.db:after-commit"))
    return storage


configure()
