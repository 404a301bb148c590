"""Sweep storage credentials: where the storage URL comes from, and how workers find it
without the password travelling on command lines or in task payloads.

The coordinator gets the URL from one of

* ``--storage-env NAME``: the environment variable ``NAME`` holds the URL;
* ``--storage-file PATH``: the file ``PATH`` holds it (refused when every user may read
  it: ``chmod 600 PATH``);
* ``--storage URL``: the URL itself. A URL with a password warns that it is visible to
  every user in ``ps``; it is handed to workers through the environment variable
  :data:`INHERITED_ENV`, which local workers, Dask ``LocalCluster`` workers and SLURM jobs
  (``sbatch`` exports the submitting environment by default) inherit.

What goes into task payloads is a *storage reference* (:data:`StorageRef`): the URL itself
only when it holds no secret, else ``{"env": NAME}`` or ``{"file": PATH}``, which the
worker resolves with :func:`resolve_storage`.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from spikeforge.errors import SpikeforgeError

SECRET_QUERY_KEYS = ("password", "pass", "pwd", "passwd", "sslpassword")
INHERITED_ENV = "SPIKEFORGE_SWEEP_STORAGE"
"""Environment variable that carries a ``--storage`` URL with a password to workers."""

StorageRef = str | dict[str, str]
"""A URL without secret, ``{"env": NAME}`` or ``{"file": PATH}``."""


def redact(url: str) -> str:
    """``url`` with any password (``user:pw@`` or ``?password=pw``) replaced by ``***``
    (for messages and sweep.json)."""
    parts = urlsplit(url)
    changed = parts
    if parts.password:
        changed = changed._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
        query = [(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
        changed = changed._replace(query=urlencode(query, safe="*"))
    return url if changed == parts else urlunsplit(changed)


def has_secret(url: str) -> bool:
    """Does ``url`` hold a password?"""
    return redact(url) != url


def read_storage_env(name: str) -> str:
    """The storage URL in environment variable ``name``."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise SpikeforgeError(f"environment variable {name} (named by --storage-env) is not "
                              f"set or empty on {os.uname().nodename}; export {name}=URL "
                              "where the sweep runs")
    return value


def read_storage_file(path: Path | str) -> str:
    """The storage URL in file ``path`` (its first non-empty line), refusing a file that
    every user may read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise SpikeforgeError(f"cannot read the storage file {path} (named by "
                              f"--storage-file): {exc.strerror or exc}") from exc
    if mode & stat.S_IROTH:
        raise SpikeforgeError(f"storage file {path} is readable by every user (mode "
                              f"{stat.S_IMODE(mode):04o}); restrict it with: chmod 600 {path}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SpikeforgeError(f"storage file {path} is empty; write the storage URL into it")
    return lines[0]


def resolve_storage(ref: StorageRef) -> str:
    """The storage URL a reference stands for (in a worker or the coordinator)."""
    if isinstance(ref, str):
        return ref
    if set(ref) == {"env"}:
        return read_storage_env(ref["env"])
    if set(ref) == {"file"}:
        return read_storage_file(ref["file"])
    raise SpikeforgeError(f"unknown storage reference {sorted(ref)}; expected env or file")


def storage_from_options(
    storage: str | None = None, storage_env: str | None = None,
    storage_file: Path | str | None = None, option: str = "--storage",
) -> tuple[str | None, StorageRef | None]:
    """``(URL, reference for workers)`` from the three storage options (at most one
    given); ``(None, None)`` when none is.

    A ``storage`` URL with a password warns (it is visible in ``ps``) and is put into
    :data:`INHERITED_ENV` of this process for the workers it starts.
    """
    given = [o for o, v in (("--storage", storage), ("--storage-env", storage_env),
                            ("--storage-file", storage_file)) if v]
    if len(given) > 1:
        raise SpikeforgeError(f"give only one of {', '.join(given)}")
    if storage_env:
        return read_storage_env(storage_env), {"env": storage_env}
    if storage_file:
        path = Path(storage_file).absolute()
        return read_storage_file(path), {"file": str(path)}
    if not storage:
        return None, None
    if not has_secret(storage):
        return storage, storage
    warnings.warn(
        f"the password in {option} {redact(storage)} is visible to every user of this "
        "machine (ps, shell history); use --storage-env NAME or --storage-file PATH instead",
        UserWarning, stacklevel=2)
    os.environ[INHERITED_ENV] = storage
    return storage, {"env": INHERITED_ENV}

