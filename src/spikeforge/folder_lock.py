"""Exclusive folder locks (``flock`` on ``FOLDER/.lock``): one process at a time writes a
run, fold or cross-validation folder. The lock goes away with its process, so a kill -9
never leaves a folder locked; the file keeps the last holder's ``host pid`` for the
message the next process prints."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from spikeforge.errors import SpikeforgeError

LOCK_FILE = ".lock"


class FolderLock:
    """Hold ``folder/.lock`` exclusively; use as a context manager or call
    :meth:`acquire` / :meth:`release`.

    Args:
        folder: an existing folder.
        what: what the folder is, for the error message ("run", "cross-validation").
        wait_s: how long to wait for another holder to finish (0: fail at once).
    """

    def __init__(self, folder: Path, what: str = "run", wait_s: float = 0.0):
        self.folder, self.what, self.wait_s = Path(folder), what, wait_s
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_FILE

    def _holder(self) -> str:
        try:
            text = self.path.read_text().split()
        except OSError:
            text = []
        if len(text) >= 2:
            return f"PID {text[1]} on {text[0]}"
        return "another process"

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`SpikeforgeError` naming the holder's PID."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder()
                    os.close(fd)
                    raise SpikeforgeError(
                        f"{self.what} folder {self.folder} is already in use by {holder}; "
                        "wait for it to finish or choose another --out") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} {os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (the file stays: removing it would race with a waiter)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()
