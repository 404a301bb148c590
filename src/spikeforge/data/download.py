"""Fetch public dataset files once into a local folder, verified against pinned checksums.

``ensure_file`` returns a local path for a dataset file: it uses an existing file in the
folder, otherwise downloads ``<base_url>/<name>.gz`` (or ``.zip``, or the bare name) over
HTTPS, checks the download against the digest the caller pins, and unpacks it.

Rules:

* **HTTPS only.** ``http://``, ``file:`` and every other scheme are refused with a clear
  error. Certificates are verified with the system's CA store (``ssl`` defaults, which
  honour OpenSSL's standard ``SSL_CERT_FILE`` variable; the tests use it to trust their
  own local server).
* **Pinned digests.** A download is accepted only when its digest matches the pinned
  value (SHA-256, or MD5 where that is all the dataset's publishers give). There is no
  fallback to a checksum list fetched from the same host, and no download without a pin.
* **Limits.** One total deadline for the whole download (not per read), a maximum
  download size and a maximum unpacked size (gzip or zip bombs stop early), see
  :class:`Limits`.
* **Nothing half-written.** Every write goes to a temporary file (``.<name>...part``)
  that is renamed only after verification; a download of a file holds the lock
  ``.<name>.download.lock`` (``flock``), so concurrent workers download it once, and
  ``.part`` files left by a killed download are removed by the next one.
* **Files on disk.** The SHA-256 of every downloaded file is recorded in ``SHA256SUMS``
  (updated under the lock ``.SHA256SUMS.lock``) and re-checked each time the file is
  used. In the download cache (:func:`default_cache_dir`) and for every recorded file,
  a file whose pinned or recorded digest no longer matches is deleted with a one-line
  error naming the file, the expected digest and the fix. Files you put in your own
  ``--data-dir`` yourself are your data (a subset or a synthetic set is fine) and are
  used as they are.

Set ``SPIKEFORGE_OFFLINE=1`` to never touch the network.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import logging
import os
import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spikeforge.atomic import atomic_path, write_text_atomic
from spikeforge.errors import SpikeforgeError

log = logging.getLogger("spikeforge.data")

MANIFEST = "SHA256SUMS"
ARCHIVES = ("gz", "zip", "none")
CHUNK = 1 << 16
GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Bounds on one download.

    Attributes:
        total_timeout_s: deadline for the whole download, connection included, seconds.
        read_timeout_s: longest wait for any single read, seconds (never past the
            deadline).
        max_download_bytes: largest accepted download (the ``Content-Length`` is checked
            first, the bytes received as they arrive).
        max_unpacked_bytes: largest accepted file after gunzip / unzip.
    """

    total_timeout_s: float = 3600.0
    read_timeout_s: float = 60.0
    max_download_bytes: int = 8 * GIB
    max_unpacked_bytes: int = 16 * GIB


class ChecksumError(SpikeforgeError):
    """A downloaded or stored file does not match its pinned or recorded digest."""


def default_cache_dir() -> Path:
    """``$SPIKEFORGE_DATA`` or ``~/.cache/spikeforge/datasets``."""
    env = os.environ.get("SPIKEFORGE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "spikeforge" / "datasets"


def in_cache(folder: Path) -> bool:
    """Is ``folder`` inside the download cache (whose files spikeforge manages)?"""
    try:
        return Path(folder).resolve().is_relative_to(default_cache_dir().resolve())
    except OSError:
        return False


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_url(url: str) -> None:
    """Raise unless ``url`` is an ``https://`` URL."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme != "https":
        raise SpikeforgeError(
            f"refusing to download {url}: only https:// URLs are allowed (got "
            f"{scheme + ':' if scheme else 'no scheme'}); use an https mirror or put the "
            "file in the data folder yourself"
        )


# -- locks and the manifest -----------------------------------------------------------
@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); waits for holders.
    The lock goes away with its process, so a kill never leaves it held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _manifest_lock(folder: Path) -> Path:
    return folder / f".{MANIFEST}.lock"


def _download_lock(folder: Path, name: str) -> Path:
    return folder / f".{name}.download.lock"


def read_manifest(folder: Path) -> dict[str, str]:
    """``{file name: SHA-256}`` recorded in ``folder/SHA256SUMS`` (empty if none)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    entries = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            entries[parts[1]] = parts[0]
    return entries


def _update_manifest(folder: Path, name: str, sha256: str | None) -> None:
    """Record (or, with ``None``, forget) ``name`` in the manifest, under its lock, so
    concurrent workers never lose each other's entries."""
    with file_lock(_manifest_lock(folder)):
        entries = read_manifest(folder)
        if sha256 is None:
            if entries.pop(name, None) is None:
                return
        else:
            entries[name] = sha256
        write_text_atomic(folder / MANIFEST,
                          "".join(f"{d}  {n}\n" for n, d in sorted(entries.items())))


# -- checks of files on disk ----------------------------------------------------------
def _reject(path: Path, algorithm: str, expected: str, got: str, fix: str) -> ChecksumError:
    path.unlink(missing_ok=True)
    _update_manifest(path.parent, path.name, None)
    return ChecksumError(
        f"{path} does not match its {algorithm.upper()} {expected} (got {got}): it is "
        f"corrupt, truncated or not the published file and was deleted; {fix}"
    )


def verify_on_disk(path: Path, pinned: str | None = None, algorithm: str = "sha256",
                   fix: str = "run the command again to download it afresh") -> None:
    """Check an existing dataset file (see the module docstring).

    ``pinned`` is the published digest of this very file (under ``algorithm``); it is
    checked when the file is in the download cache or recorded in ``SHA256SUMS``. The
    recorded SHA-256 is checked whenever there is one. A mismatch deletes the file and
    raises :class:`ChecksumError`.
    """
    path = Path(path)
    recorded = read_manifest(path.parent).get(path.name)
    if pinned is not None and (recorded is not None or in_cache(path.parent)):
        got = file_digest(path, algorithm)
        if got != pinned.lower():
            raise _reject(path, algorithm, pinned, got, fix)
    elif pinned is not None and file_digest(path, algorithm) != pinned.lower():
        log.info("%s differs from the published file; used as your own data", path)
    if recorded is not None:
        got = file_digest(path)
        if got != recorded:
            raise _reject(path, "sha256", recorded, got, fix)


def verify_recorded(path: Path) -> None:
    """Check ``path`` against the SHA-256 recorded when it was downloaded (if any)."""
    verify_on_disk(path)


# -- the download ---------------------------------------------------------------------
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _socket_of(response) -> socket.socket | None:
    raw = getattr(getattr(response, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _fetch(url: str, out: BinaryIO, limits: Limits) -> None:
    """Copy ``url`` into ``out`` within ``limits`` (one deadline for all of it)."""
    deadline = time.monotonic() + limits.total_timeout_s

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SpikeforgeError(f"download of {url} took longer than "
                                  f"{limits.total_timeout_s:g} s; try again later")
        return min(left, limits.read_timeout_s)

    try:
        response = urllib.request.urlopen(url, timeout=remaining(),  # noqa: S310 (https only)
                                          context=_ssl_context())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SpikeforgeError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from exc
    with response:
        status = getattr(response, "status", 200)
        if status != 200:  # e.g. 202 with an empty body from hosts that refuse scripts
            raise SpikeforgeError(f"cannot download {url}: the server answered HTTP {status} "
                                  f"instead of sending the file")
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limits.max_download_bytes:
            raise SpikeforgeError(f"{url} is {int(length)} bytes, more than the limit of "
                                  f"{limits.max_download_bytes}")
        sock, received = _socket_of(response), 0
        while True:
            wait = remaining()
            if sock is not None and not response.isclosed():
                with contextlib.suppress(OSError):  # closed at the end of the body
                    sock.settimeout(wait)
            try:
                chunk = response.read1(CHUNK)  # what has arrived: the deadline holds
            except TimeoutError as exc:
                remaining()  # past the deadline: say so
                raise SpikeforgeError(f"cannot download {url}: no data for "
                                      f"{limits.read_timeout_s:g} s") from exc
            except OSError as exc:
                raise SpikeforgeError(f"cannot download {url}: {exc}") from exc
            if not chunk:
                return
            received += len(chunk)
            if received > limits.max_download_bytes:
                raise SpikeforgeError(f"{url} sent more than the limit of "
                                      f"{limits.max_download_bytes} bytes")
            out.write(chunk)
            remaining()


def _copy_limited(src: BinaryIO, dst: BinaryIO, limit: int, what: str) -> None:
    written = 0
    for chunk in iter(lambda: src.read(1 << 20), b""):
        written += len(chunk)
        if written > limit:
            raise SpikeforgeError(f"{what} unpacks to more than the limit of {limit} bytes")
        dst.write(chunk)


def _unpack(fetched: Path, target: Path, archive: str, member: str, url: str,
            limits: Limits) -> None:
    """Write the content of ``fetched`` (gzip, a zip holding a file named ``member``, or
    plain) to ``target``."""
    limit = limits.max_unpacked_bytes
    if archive == "none":
        shutil.copyfile(fetched, target)
    elif archive == "gz":
        try:
            with gzip.open(fetched, "rb") as src, open(target, "wb") as dst:
                _copy_limited(src, dst, limit, url)
        except (OSError, EOFError) as exc:
            raise SpikeforgeError(f"{url} is not a valid gzip file ({exc})") from exc
    else:
        try:
            with zipfile.ZipFile(fetched) as bundle:
                members = [m for m in bundle.infolist()
                           if not m.is_dir() and Path(m.filename).name == member]
                if not members:
                    raise SpikeforgeError(f"{url} holds no file named {member}")
                if members[0].file_size > limit:
                    raise SpikeforgeError(f"{url} unpacks to {members[0].file_size} bytes, "
                                          f"more than the limit of {limit}")
                with bundle.open(members[0]) as src, open(target, "wb") as dst:
                    _copy_limited(src, dst, limit, url)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SpikeforgeError(f"{url} is not a valid zip file ({exc})") from exc


def _remote_name(name: str, archive: str) -> str:
    return name + {"gz": ".gz", "zip": ".zip", "none": ""}[archive]


def _remove_stale_parts(folder: Path, remote: str) -> None:
    """Partial downloads of ``remote`` left by a killed process (call under its lock)."""
    for stale in folder.glob(f".{remote}.*.part"):
        log.info("removing %s left by an interrupted download", stale)
        stale.unlink(missing_ok=True)


def download(
    name: str, folder: Path, base_url: str, sha256: str | None = None, gz: bool = True,
    algorithm: str = "sha256", archive: str | None = None, limits: Limits | None = None,
) -> Path:
    """Download ``base_url/name[.gz|.zip]`` into ``folder/name`` (see the module doc).

    ``sha256`` is the pinned hex digest of the downloaded file under ``algorithm``
    (default SHA-256; MNIST's and the SHD/SSC archives' published sums are MD5).
    ``archive`` is ``"gz"``, ``"zip"`` or ``"none"`` (default from ``gz``).

    Raises :class:`SpikeforgeError` on a refused URL, network failure, timeout or size
    limit, and :class:`ChecksumError` on a digest mismatch; nothing but hidden lock files
    is left in ``folder`` then.
    """
    archive = archive or ("gz" if gz else "none")
    if archive not in ARCHIVES:
        raise ValueError(f"archive must be one of {ARCHIVES}, got {archive!r}")
    limits = limits or Limits()
    remote = _remote_name(name, archive)
    url = f"{base_url.rstrip('/')}/{remote}"
    check_url(url)
    if os.environ.get("SPIKEFORGE_OFFLINE"):
        raise SpikeforgeError("offline (SPIKEFORGE_OFFLINE is set)")
    if sha256 is None:
        raise SpikeforgeError(f"no pinned checksum for {url}; refusing to download an "
                              "unverifiable file")
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    try:
        with file_lock(_download_lock(folder, name)):
            _remove_stale_parts(folder, remote)
            if target.is_file():  # another worker finished it while we waited
                verify_on_disk(target, sha256 if archive == "none" else None, algorithm)
                return target
            _download_locked(url, folder, target, remote, sha256, algorithm, archive, limits)
    except BaseException:
        if created:
            _remove_if_only_locks(folder)
        raise
    return target


def _download_locked(url: str, folder: Path, target: Path, remote: str, expected: str,
                     algorithm: str, archive: str, limits: Limits) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{remote}.", suffix=".part")
    fetched = Path(tmp_name)
    try:
        log.info("downloading %s to %s", url, target)
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, limits)
        got = file_digest(fetched, algorithm)
        if got != expected.lower():
            raise ChecksumError(
                f"checksum mismatch for {url}: {algorithm.upper()} {got}, expected "
                f"{expected}; the download is corrupt or the file changed upstream and was "
                f"deleted; try again, or download it yourself and put it at {target}"
            )
        with atomic_path(target) as tmp:
            _unpack(fetched, tmp, archive, target.name, url, limits)
        _update_manifest(folder, target.name, file_digest(target))
    finally:
        fetched.unlink(missing_ok=True)


def _remove_if_only_locks(folder: Path) -> None:
    with contextlib.suppress(OSError):
        entries = list(folder.iterdir())
        if all(p.name.endswith(".lock") for p in entries):
            for p in entries:
                p.unlink(missing_ok=True)
            folder.rmdir()  # leave no empty folder behind


def ensure_file(
    name: str, folder: Path, base_url: str, sha256: str | None = None, gz: bool = True,
    allow_download: bool = True, hint: str = "", algorithm: str = "sha256",
    archive: str | None = None, limits: Limits | None = None,
) -> Path:
    """Path of ``folder/name``, checked if it exists (:func:`verify_on_disk`), downloaded
    first if it is missing (:func:`download`).

    When the file is missing and cannot be downloaded the error says which file to put
    where (plus ``hint``); a digest mismatch is raised as it is.
    """
    archive = archive or ("gz" if gz else "none")
    folder = Path(folder)
    path = folder / name
    remote = f"{base_url.rstrip('/')}/{_remote_name(name, archive)}"
    unpack = {"gz": ", gunzip it", "zip": ", unzip it", "none": ""}[archive]
    fix = f"run the command again to download it afresh, or download {remote}{unpack} " \
          f"and put it at {path}"
    if path.is_file():
        verify_on_disk(path, sha256 if archive == "none" else None, algorithm, fix)
        return path
    if allow_download:
        try:
            return download(name, folder, base_url, sha256, gz, algorithm, archive, limits)
        except ChecksumError:
            raise
        except SpikeforgeError as exc:
            why = str(exc)
    else:
        why = "downloads are disabled"
    raise SpikeforgeError(
        f"dataset file {path} is missing ({why}); download {remote}{unpack} and put it "
        f"at {path}{hint}"
    )


# -- folder datasets (N-MNIST, DVS Gesture): one archive per split, unpacked to a tree ---
@dataclass(frozen=True)
class TreeArchive:
    """One published archive that unpacks to a folder of recordings.

    Attributes:
        url: full ``https://`` URL of the archive.
        filename: local name of the downloaded archive (``.zip`` or ``.tar.gz``).
        digest: pinned hex digest of the archive under ``algorithm``.
        algorithm: ``"sha256"`` or ``"md5"`` (what the publisher gives).
        folder: name of the folder the archive holds (at any depth up to 3), which
            becomes ``<data folder>/<folder>``.
    """

    url: str
    filename: str
    digest: str
    algorithm: str
    folder: str


def download_url(url: str, folder: Path, name: str, digest: str | None,
                 algorithm: str = "sha256", limits: Limits | None = None) -> Path:
    """Download the file at ``url`` (any https URL) into ``folder/name``, verified against
    the pinned ``digest``; same rules as :func:`download` (lock, ``.part`` file, manifest)."""
    check_url(url)
    if os.environ.get("SPIKEFORGE_OFFLINE"):
        raise SpikeforgeError("offline (SPIKEFORGE_OFFLINE is set)")
    if digest is None:
        raise SpikeforgeError(f"no pinned checksum for {url}; refusing to download an "
                              "unverifiable file")
    limits = limits or Limits()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    with file_lock(_download_lock(folder, name)):
        _remove_stale_parts(folder, name)
        if target.is_file():
            verify_on_disk(target, digest, algorithm)
            return target
        _download_locked(url, folder, target, name, digest, algorithm, "none", limits)
    return target


def _safe_member(name: str, archive: Path) -> Path:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        raise SpikeforgeError(f"{archive} holds the unsafe path {name!r} (absolute or with "
                              f"'..'); refusing to unpack it")
    return path


def extract_archive(archive: Path, dest: Path, limits: Limits | None = None) -> None:
    """Unpack a ``.zip`` or ``.tar[.gz]`` ``archive`` into the folder ``dest`` (created):
    regular files and folders only (links and devices are skipped), no absolute or ``..``
    paths, at most ``limits.max_unpacked_bytes`` in all."""
    import tarfile

    limit = (limits or Limits()).max_unpacked_bytes
    dest.mkdir(parents=True, exist_ok=True)
    total = 0

    def write(src: BinaryIO, rel: Path) -> None:
        nonlocal total
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                total += len(chunk)
                if total > limit:
                    raise SpikeforgeError(f"{archive} unpacks to more than the limit of "
                                          f"{limit} bytes")
                dst.write(chunk)

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.infolist():
                    rel = _safe_member(member.filename, archive)
                    if member.is_dir():
                        (dest / rel).mkdir(parents=True, exist_ok=True)
                        continue
                    with bundle.open(member) as src:
                        write(src, rel)
            return
        with tarfile.open(archive, "r:*") as bundle:
            for member in bundle:
                rel = _safe_member(member.name, archive)
                if member.isdir():
                    (dest / rel).mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    src = bundle.extractfile(member)
                    assert src is not None
                    with src:
                        write(src, rel)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise SpikeforgeError(f"{archive} is not a readable zip or tar archive ({exc})") from exc


def _find_folder(root: Path, name: str, depth: int = 3) -> Path | None:
    level = [root]
    for _ in range(depth + 1):
        for folder in level:
            if folder.name == name and folder != root:
                return folder
        level = [c for f in level for c in sorted(f.iterdir()) if c.is_dir()]
    return None


def ensure_tree(folder: Path, archives: tuple[TreeArchive, ...], allow_download: bool = True,
                what: str = "dataset", limits: Limits | None = None) -> Path:
    """``folder`` holding ``folder/<a.folder>`` for every archive ``a``; missing ones are
    downloaded (pinned digest), unpacked and moved into place (a folder appears only when
    complete; the archive is deleted after unpacking). Without the network, or with
    ``allow_download`` off, the error names every URL and where its content goes."""
    folder = Path(folder)
    missing = [a for a in archives if not (folder / a.folder).is_dir()]
    if not missing:
        return folder

    def manual(why: str) -> SpikeforgeError:
        steps = "; ".join(f"download {a.url} ({a.algorithm.upper()} {a.digest}) and unpack "
                          f"it so that its {a.folder}/ folder is {folder / a.folder}"
                          for a in missing)
        return SpikeforgeError(f"{what} is not in {folder} ({why}): {steps}; or pass "
                               f"--data-dir to a folder that already holds it")

    if not allow_download:
        raise manual("downloads are disabled")
    for archive in missing:
        try:
            path = download_url(archive.url, folder, archive.filename, archive.digest,
                                archive.algorithm, limits)
        except ChecksumError:
            raise
        except SpikeforgeError as exc:
            raise manual(str(exc)) from exc
        with file_lock(_download_lock(folder, archive.folder)):
            if (folder / archive.folder).is_dir():  # another worker unpacked it
                continue
            for stale in folder.glob(f".{archive.folder}.*.part"):  # left by a kill
                shutil.rmtree(stale, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{archive.folder}.",
                                            suffix=".part"))
            try:
                extract_archive(path, staging, limits)
                found = _find_folder(staging, archive.folder)
                if found is None:
                    raise SpikeforgeError(f"{archive.url} holds no {archive.folder}/ folder; "
                                          f"unpack it yourself and put that folder at "
                                          f"{folder / archive.folder}")
                found.rename(folder / archive.folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        path.unlink(missing_ok=True)
        _update_manifest(folder, archive.filename, None)
    with file_lock(_manifest_lock(folder)):
        if (folder / MANIFEST).is_file() and not read_manifest(folder):
            (folder / MANIFEST).unlink()  # it only listed the archives, now deleted
    return folder
