"""Dataset downloads: HTTPS only, pinned digests, one total deadline, size limits, a locked
checksum manifest, and nothing mistaken for a complete file after a kill.

The server is a local HTTPS server with a self-signed certificate made here with the
``openssl`` command; the client trusts it through OpenSSL's standard ``SSL_CERT_FILE``
variable (the same verified TLS path real downloads use, no test-only switch in the code).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from services import unavailable
from spikeforge.data import load_dataset, shd
from spikeforge.data.download import (
    MANIFEST,
    ChecksumError,
    Limits,
    _update_manifest,
    check_url,
    download,
    ensure_file,
    read_manifest,
)
from spikeforge.data.synthetic_shd import synthesize_shd
from spikeforge.errors import SpikeforgeError


# -- a local HTTPS server -------------------------------------------------------------
class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves ``server.root``; ``server.modes[name]`` changes how ``/name`` is sent:
    ``drip`` (one byte per 50 ms), ``stall`` (half the file, then silence),
    ``nolength`` (no Content-Length header) or ``huge`` (claims 10 GiB)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        name = self.path.lstrip("/")
        self.server.requests.append(name)
        path = self.server.root / name
        if not path.is_file():
            self.send_error(404)
            return
        body, mode = path.read_bytes(), self.server.modes.get(name)
        self.send_response(200)
        if mode == "huge":
            self.send_header("Content-Length", str(10 << 30))
        elif mode != "nolength":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if mode == "drip":
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
            elif mode == "stall":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.server.stalled.wait(30)
            else:
                self.wfile.write(body)
        except OSError:
            pass  # the client gave up


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Path:
    """A self-signed certificate for 127.0.0.1 (``cert.pem`` + ``key.pem``)."""
    if shutil.which("openssl") is None:
        unavailable("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60)  # fmt: skip
    return folder


@pytest.fixture
def https(tmp_path, certificate, monkeypatch):
    """``(server, base URL)`` of an HTTPS server for ``tmp_path/served``, trusted by the
    client through ``SSL_CERT_FILE``."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.root, server.modes, server.requests = root, {}, []
    server.stalled = threading.Event()
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate / "cert.pem"))
    monkeypatch.delenv("SPIKEFORGE_OFFLINE", raising=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"https://127.0.0.1:{server.server_address[1]}"
    server.stalled.set()
    server.shutdown()
    server.server_close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _zip(path: Path, member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(member, data)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


# -- URLs -----------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://example.org/shd_train.h5.zip",
                                 "file:///tmp/shd_train.h5.zip", "ftp://example.org/x",
                                 "example.org/x", "HTTP://example.org/x"])
def test_only_https_urls_are_accepted(url, tmp_path):
    with pytest.raises(SpikeforgeError, match="only https:// URLs are allowed"):
        check_url(url)
    with pytest.raises(SpikeforgeError, match="only https:// URLs are allowed"):
        download("x", tmp_path / "cache", url.rsplit("/", 1)[0], sha256="0" * 64)
    assert not (tmp_path / "cache").exists()
    check_url("https://zenkelab.org/datasets/shd_train.h5.zip")  # no error


def test_a_download_needs_a_pinned_digest(tmp_path, https):
    server, url = https
    (server.root / "x.gz").write_bytes(gzip.compress(b"data"))
    with pytest.raises(SpikeforgeError, match="no pinned checksum"):
        download("x", tmp_path / "cache", url)
    assert server.requests == [] and not (tmp_path / "cache").exists()


def test_untrusted_certificate_is_refused(tmp_path, https, monkeypatch):
    server, url = https
    data = gzip.compress(b"data")
    (server.root / "x.gz").write_bytes(data)
    monkeypatch.delenv("SSL_CERT_FILE")  # the system CAs do not know the test certificate
    with pytest.raises(SpikeforgeError, match="CERTIFICATE_VERIFY_FAILED"):
        download("x", tmp_path / "cache", url, sha256=hashlib.sha256(data).hexdigest())
    assert not (tmp_path / "cache").exists()


# -- pinned digests -------------------------------------------------------------------
def test_shd_over_https_checked_against_pinned_md5(tmp_path, https, monkeypatch):
    server, url = https
    src = synthesize_shd(tmp_path / "src", n_train=20, n_test=8, n_classes=2, n_speakers=3,
                         n_test_speakers=1, n_channels=700, spikes_per_sample=50)
    for split in ("train", "test"):
        name = f"shd_{split}.h5"
        archive = _zip(server.root / f"{name}.zip", name, (src / name).read_bytes())
        monkeypatch.setitem(shd.PINNED_MD5, f"{name}.zip", _md5(archive))
    cache = tmp_path / "cache"
    splits = load_dataset("shd", 1.0, cache, base_url=url)
    assert len(splits.test) == 8
    assert _visible(cache) == [MANIFEST, "shd_test.h5", "shd_train.h5"]
    recorded = read_manifest(cache)
    assert recorded["shd_test.h5"] == hashlib.sha256((src / "shd_test.h5").read_bytes()
                                                     ).hexdigest()
    assert sorted(server.requests) == ["shd_test.h5.zip", "shd_train.h5.zip"]
    load_dataset("shd", 1.0, cache, base_url=url)  # from the cache: no new request
    assert len(server.requests) == 2
    # a later corruption: the file is deleted, the error names it, the hash and the fix
    (cache / "shd_test.h5").write_bytes(b"x" * 10)
    with pytest.raises(ChecksumError) as info:
        load_dataset("shd", 1.0, cache, base_url=url, download=False)
    text = str(info.value)
    assert "\n" not in text and str(cache / "shd_test.h5") in text
    assert recorded["shd_test.h5"] in text and "was deleted" in text
    assert f"download {url}/shd_test.h5.zip, unzip it and put it at" in text
    assert not (cache / "shd_test.h5").exists() and "shd_test.h5" not in read_manifest(cache)
    assert len(load_dataset("shd", 1.0, cache, base_url=url).test) == 8  # fetched afresh


def test_shd_pins_the_published_archive_checksums():
    assert set(shd.PINNED_MD5) == {f"{v}_{s}.h5.zip" for v, spec in shd.VARIANTS.items()
                                   for s in spec["files"]}
    assert shd.PINNED_MD5["shd_train.h5.zip"] == "f3252aeb598ac776c1b526422d90eecb"
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in shd.PINNED_MD5.values())


def test_pinned_mismatch_deletes_the_download(tmp_path, https):
    server, url = https
    _zip(server.root / "shd_train.h5.zip", "shd_train.h5", b"not the published file")
    cache = tmp_path / "cache"
    expected = "0123456789abcdef0123456789abcdef"
    with pytest.raises(ChecksumError) as info:
        ensure_file("shd_train.h5", cache, url, expected, archive="zip", algorithm="md5")
    text = str(info.value)
    assert "\n" not in text and f"{url}/shd_train.h5.zip" in text and expected in text
    assert "was deleted" in text and f"put it at {cache / 'shd_train.h5'}" in text
    assert not cache.exists()  # no partial file, not even the folder it created


def test_mnist_files_in_the_cache_are_checked_against_pinned_md5(tmp_path, monkeypatch):
    from spikeforge.data import mnist

    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("SPIKEFORGE_OFFLINE", "1")
    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    stale = folder / "train-images-idx3-ubyte.gz"
    stale.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x00"))
    with pytest.raises(ChecksumError) as info:
        load_dataset("mnist", 1.0, None)
    text = str(info.value)
    assert str(stale) in text and mnist.MD5[stale.name] in text and "\n" not in text
    assert f"download {mnist.MIRROR}/{stale.name} and put it at {stale}" in text
    assert not stale.exists()
    # the same file in a folder of your own is your data: used as it is
    own = tmp_path / "own"
    own.mkdir()
    (own / stale.name).write_bytes(b"anything")
    assert mnist.locate("train-images-idx3-ubyte", own, download=False) == own / stale.name


def test_downloaded_mnist_file_checked_on_every_use(tmp_path, https):
    from spikeforge.data import mnist

    server, url = https
    data = gzip.compress(b"idx bytes")
    (server.root / "a.gz").write_bytes(data)
    own = tmp_path / "own"  # not the cache, but spikeforge downloaded it: it is checked
    path = ensure_file("a.gz", own, url, _md5(data), gz=False, algorithm="md5")
    assert path.read_bytes() == data and mnist.read_idx  # kept gzipped
    path.write_bytes(data[:-1])
    with pytest.raises(ChecksumError, match=f"its MD5 {_md5(data)}"):
        ensure_file("a.gz", own, url, _md5(data), gz=False, algorithm="md5",
                    allow_download=False)
    assert not path.exists()


# -- deadline and size limits ---------------------------------------------------------
@pytest.mark.parametrize("mode", ["drip", "stall"])
def test_total_timeout_covers_the_whole_download(tmp_path, https, mode):
    server, url = https
    data = os.urandom(2000)
    (server.root / "x").write_bytes(data)
    server.modes["x"] = mode
    start = time.monotonic()
    with pytest.raises(SpikeforgeError, match="took longer than 1 s"):
        download("x", tmp_path / "cache", url, hashlib.sha256(data).hexdigest(), gz=False,
                 limits=Limits(total_timeout_s=1.0, read_timeout_s=30.0))
    assert time.monotonic() - start < 5.0  # a drip of 1 byte per 50 ms would take 100 s
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("mode", ["huge", "nolength"])
def test_download_size_limit(tmp_path, https, mode):
    server, url = https
    data = os.urandom(5000)
    (server.root / "x").write_bytes(data)
    server.modes["x"] = mode
    with pytest.raises(SpikeforgeError, match="more than the limit of 4096"):
        download("x", tmp_path / "cache", url, hashlib.sha256(data).hexdigest(), gz=False,
                 limits=Limits(max_download_bytes=4096))
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("archive", ["gz", "zip"])
def test_unpacked_size_limit(tmp_path, https, archive):
    server, url = https
    bomb = bytes(10 << 20)  # 10 MiB of zeros: a few kB packed
    if archive == "gz":
        packed = gzip.compress(bomb)
        (server.root / "x.gz").write_bytes(packed)
    else:
        packed = _zip(server.root / "x.zip", "x", bomb)
    assert len(packed) < 64 << 10
    with pytest.raises(SpikeforgeError, match="more than the limit of 1048576"):
        download("x", tmp_path / "cache", url, hashlib.sha256(packed).hexdigest(),
                 archive=archive, limits=Limits(max_unpacked_bytes=1 << 20))
    assert not (tmp_path / "cache").exists()
    ok = download("x", tmp_path / "cache", url, hashlib.sha256(packed).hexdigest(),
                  archive=archive)
    assert ok.stat().st_size == len(bomb)


# -- concurrency and kills ------------------------------------------------------------
MANIFEST_WRITER = """
import sys
from pathlib import Path
from spikeforge.data.download import _update_manifest
folder, worker = Path(sys.argv[1]), sys.argv[2]
for i in range(25):
    _update_manifest(folder, f"w{worker}-{i}", f"{int(worker):02d}{i:062d}")
"""


def test_concurrent_workers_never_lose_manifest_entries(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", MANIFEST_WRITER, str(tmp_path), str(w)])
             for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    entries = read_manifest(tmp_path)
    assert len(entries) == 4 * 25
    assert entries["w3-7"] == f"03{7:062d}"
    _update_manifest(tmp_path, "w3-7", None)
    assert "w3-7" not in read_manifest(tmp_path) and len(read_manifest(tmp_path)) == 99


def test_concurrent_downloads_of_one_file_fetch_it_once(tmp_path, https):
    server, url = https
    data = os.urandom(3000)
    (server.root / "x.gz").write_bytes(gzip.compress(data))
    digest = hashlib.sha256((server.root / "x.gz").read_bytes()).hexdigest()
    results, errors = [], []

    def fetch() -> None:
        try:
            results.append(ensure_file("x", tmp_path / "cache", url, digest).read_bytes())
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and results == [data] * 4
    assert server.requests == ["x.gz"]


KILLED_DOWNLOAD = """
import sys
from pathlib import Path
from spikeforge.data.download import ensure_file
ensure_file("shd_train.h5", Path(sys.argv[1]), sys.argv[2], sys.argv[3], archive="zip",
            algorithm="md5")
"""


def test_kill_mid_download_leaves_nothing_taken_for_complete(tmp_path, https):
    server, url = https
    payload = os.urandom(400_000)
    archive = _zip(server.root / "shd_train.h5.zip", "shd_train.h5", payload)
    server.modes["shd_train.h5.zip"] = "stall"
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DOWNLOAD, str(cache), url,
                             _md5(archive)], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while not [p for p in cache.glob(".*.part") if p.stat().st_size > 0]:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (cache / "shd_train.h5").exists()
    assert _visible(cache) and all(n.endswith(".part") for n in _visible(cache))
    with pytest.raises(SpikeforgeError, match="shd_train.h5 is missing"):
        ensure_file("shd_train.h5", cache, url, _md5(archive), archive="zip",
                    algorithm="md5", allow_download=False)
    # the next download removes the leftover and completes
    server.modes.clear()
    server.stalled.set()
    path = ensure_file("shd_train.h5", cache, url, _md5(archive), archive="zip",
                       algorithm="md5")
    assert path.read_bytes() == payload
    assert _visible(cache) == [MANIFEST, "shd_train.h5"]
