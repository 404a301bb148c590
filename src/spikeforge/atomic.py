"""Atomic file writes: write to a temporary file beside the target, fsync, rename, fsync the
folder. Files get the permissions of a plain ``open()`` (0666 minus the umask), not the
private 0600 of :func:`tempfile.mkstemp`."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spikeforge import fault_injection
from spikeforge.errors import SpikeforgeError

TEMP_MARK = ".tmp-"
"""Part of every temporary name written here: ``.<target name>.tmp-<random><suffix>``."""

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read without changing it for other threads for long)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode a new file gets from ``open()``: 0666 minus the umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """Mode a new folder gets from ``mkdir()``: 0777 minus the umask."""
    return 0o777 & ~current_umask()


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_parent(path: Path) -> None:
    if not path.parent.is_dir():
        raise SpikeforgeError(f"cannot write {path}: folder {path.parent} does not exist; "
                              "create it or choose another path")


def make_temp_dir(parent: Path, name: str) -> Path:
    """A fresh folder ``parent/.<name>.tmp-<random>`` with the umask's permissions."""
    _check_parent(Path(parent) / name)
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}{TEMP_MARK}"))
    os.chmod(folder, dir_mode())
    return folder


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is
    removed, so readers only ever see the old or the complete new file.

    Passes the write points ``<name>:written`` (before the rename) and ``<name>:renamed``
    (after it) of :mod:`spikeforge.fault_injection` when fault injection is on."""
    path = Path(path)
    _check_parent(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}",
                                    suffix=path.suffix or ".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        if fault_injection.is_armed():
            fault_injection.fault_point(fault_injection.atomic_label(path, "written"))
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if fault_injection.is_armed():
            fault_injection.fault_point(fault_injection.atomic_label(path, "renamed"))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files and folders left in ``folder`` by a killed writer (names
    with :data:`TEMP_MARK`, see :func:`atomic_path`). Call it only while holding the
    folder's lock, so no live writer loses its file. Returns what was removed."""
    import shutil

    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if entry.name.startswith(".") and TEMP_MARK in entry.name:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
