"""Fetch public dataset files once into a local folder, verified by checksum.

``ensure_file`` returns a local path for a dataset file: it uses an existing file in the
folder, otherwise downloads ``<base_url>/<name>[.gz]`` with urllib (any scheme urllib
supports: https, http, file), checks its digest and (for ``.gz``) decompresses it. Every
write goes to a temporary file that is renamed only after verification, so a failed or
interrupted download never leaves a partial file behind.

Checksums: a pinned SHA-256 of the downloaded file is checked when the caller gives one.
The Zenke lab publishes MD5 sums (``md5sums.txt`` beside the files) rather than SHA-256,
so official SHD/SSC downloads are checked against that list; in every case the SHA-256
of the final file is recorded in ``SHA256SUMS`` in the folder and re-checked each time
the file is used, which catches later truncation or corruption.

Set ``SPIKEFORGE_OFFLINE=1`` to never touch the network.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from spikeforge.atomic import atomic_path, write_text_atomic
from spikeforge.errors import SpikeforgeError

log = logging.getLogger("spikeforge.data")

MANIFEST = "SHA256SUMS"
TIMEOUT_S = 30.0


def default_cache_dir() -> Path:
    """``$SPIKEFORGE_DATA`` or ``~/.cache/spikeforge/datasets``."""
    env = os.environ.get("SPIKEFORGE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "spikeforge" / "datasets"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(folder: Path) -> dict[str, str]:
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    entries = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            entries[parts[1]] = parts[0]
    return entries


def _record(folder: Path, name: str, sha256: str) -> None:
    entries = _read_manifest(folder)
    entries[name] = sha256
    write_text_atomic(folder / MANIFEST,
                      "".join(f"{d}  {n}\n" for n, d in sorted(entries.items())))


def verify_recorded(path: Path) -> None:
    """Raise if ``path`` no longer matches the SHA-256 recorded when it was downloaded."""
    expected = _read_manifest(path.parent).get(path.name)
    if expected is not None and file_digest(path) != expected:
        raise SpikeforgeError(
            f"{path} does not match the SHA-256 recorded when it was downloaded (corrupt or "
            f"truncated); delete it to download it again"
        )


def _urlopen(url: str):
    return urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310 (scheme checked)


def _published_md5(base_url: str, remote: str) -> str | None:
    try:
        with _urlopen(f"{base_url}/md5sums.txt") as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == remote:
            return parts[0]
    return None


def _check_digest(fetched: Path, url: str, base_url: str, remote: str, sha256: str | None,
                  algorithm: str = "sha256"):
    if sha256 is not None:
        got = file_digest(fetched, algorithm)
        if got != sha256.lower():
            raise SpikeforgeError(
                f"checksum mismatch for {url}: {algorithm.upper()} {got}, expected {sha256}; "
                f"the download is corrupt or the file changed upstream"
            )
        return
    md5 = _published_md5(base_url.rstrip("/"), remote)
    if md5 is None:
        log.warning("no published checksum for %s; recording its SHA-256 only", url)
    elif file_digest(fetched, "md5") != md5:
        raise SpikeforgeError(
            f"checksum mismatch for {url}: MD5 differs from {base_url}/md5sums.txt"
        )


def download(
    name: str, folder: Path, base_url: str, sha256: str | None = None, gz: bool = True,
    algorithm: str = "sha256",
) -> Path:
    """Download ``base_url/name(.gz)`` into ``folder/name`` and verify it (see module doc).

    ``sha256`` is the expected hex digest of the downloaded file under ``algorithm``
    (default SHA-256; MNIST's published sums are MD5).

    Raises :class:`SpikeforgeError` on network failure or checksum mismatch; nothing is
    left in ``folder`` then.
    """
    if os.environ.get("SPIKEFORGE_OFFLINE"):
        raise SpikeforgeError("offline (SPIKEFORGE_OFFLINE is set)")
    remote = name + (".gz" if gz else "")
    url = f"{base_url.rstrip('/')}/{remote}"
    if not url.startswith(("https://", "http://", "file:")):
        raise SpikeforgeError(f"unsupported download URL {url}")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{remote}.", suffix=".part")
    os.close(fd)
    fetched = Path(tmp_name)
    try:
        log.info("downloading %s to %s", url, target)
        try:
            with _urlopen(url) as response, open(fetched, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SpikeforgeError(f"cannot download {url}: {reason}") from exc
        _check_digest(fetched, url, base_url, remote, sha256, algorithm)
        with atomic_path(target) as tmp:
            if gz:
                try:
                    with gzip.open(fetched, "rb") as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                except (OSError, EOFError) as exc:
                    raise SpikeforgeError(f"{url} is not a valid gzip file ({exc})") from exc
            else:
                shutil.copyfile(fetched, tmp)
    except BaseException:
        fetched.unlink(missing_ok=True)
        if created and not any(folder.iterdir()):
            folder.rmdir()  # leave no empty folder behind
        raise
    fetched.unlink(missing_ok=True)
    _record(folder, name, file_digest(target))
    return target


def ensure_file(
    name: str, folder: Path, base_url: str, sha256: str | None = None, gz: bool = True,
    allow_download: bool = True, hint: str = "", algorithm: str = "sha256",
) -> Path:
    """Path of ``folder/name``, downloading it first if it is missing.

    When the file is missing and cannot be downloaded the error says which file to put
    where (plus ``hint``).
    """
    folder = Path(folder)
    path = folder / name
    if path.is_file():
        verify_recorded(path)
        return path
    remote = f"{base_url.rstrip('/')}/{name}{'.gz' if gz else ''}"
    if allow_download:
        try:
            return download(name, folder, base_url, sha256, gz, algorithm)
        except SpikeforgeError as exc:
            if "checksum mismatch" in str(exc):
                raise
            why = str(exc)
    else:
        why = "downloads are disabled"
    raise SpikeforgeError(
        f"dataset file {path} is missing ({why}); download {remote}"
        f"{', gunzip it' if gz else ''} and put it at {path}{hint}"
    )
