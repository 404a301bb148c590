"""N-MNIST and DVS Gesture downloads: release archives over HTTPS from a local server with a
self-signed certificate (the fixture of tests/test_download.py), checked against pinned MD5
sums, unpacked to the folder layout the loaders read; the offline error names every URL."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest

from spikeforge.data import aedat, load_dataset, nmnist
from spikeforge.data.download import ChecksumError, Limits, TreeArchive, extract_archive
from spikeforge.errors import SpikeforgeError
from test_download import _Handler, certificate, https  # noqa: F401 (pytest fixtures)


class _Accepting(_Handler):
    """Answers ``server.modes[name] == "accepted"`` requests with HTTP 202 and no body."""

    def do_GET(self) -> None:  # noqa: N802
        if self.server.modes.get(self.path.lstrip("/")) == "accepted":
            self.server.requests.append(self.path.lstrip("/"))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _nmnist_zip(split: str, per_class: int, seed: int) -> bytes:
    """A release-style archive: ``<split>/<digit>/<k>.bin`` (N-MNIST records)."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for digit in range(10):
            for k in range(per_class):
                events = nmnist.moving_pattern_events(digit, rng, n_events=50)
                bundle.writestr(f"{split}/{digit}/{k:05d}.bin", nmnist.encode_nmnist(events))
    return buffer.getvalue()


def _serve_nmnist(server, url, monkeypatch, digests=None) -> dict[str, bytes]:
    served = {"Train": _nmnist_zip("Train", 2, 0), "Test": _nmnist_zip("Test", 1, 1)}
    archives = []
    for split, data in served.items():
        (server.root / f"{split}.zip").write_bytes(data)
        digest = (digests or {}).get(split, _md5(data))
        archives.append(TreeArchive(f"{url}/{split}.zip", f"nmnist_{split.lower()}.zip",
                                    digest, "md5", split))
    monkeypatch.setattr(nmnist, "ARCHIVES", tuple(archives))
    return served


def test_nmnist_downloads_into_the_cache_once(tmp_path, https, monkeypatch):  # noqa: F811
    server, url = https
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path / "cache"))
    _serve_nmnist(server, url, monkeypatch)
    splits = load_dataset("nmnist", 1.0, None, val_fraction=0.5)
    assert len(splits.train) + len(splits.val) == 20 and len(splits.test) == 10
    folder = tmp_path / "cache" / "nmnist"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "Test", "Train"]  # archives deleted after unpacking, no manifest entries left
    assert len(list((folder / "Train" / "7").glob("*.bin"))) == 2
    assert sorted(server.requests) == ["Test.zip", "Train.zip"]
    load_dataset("nmnist", 1.0, None)  # from the cache: no new request
    assert len(server.requests) == 2


def test_nmnist_digest_mismatch_keeps_nothing(tmp_path, https, monkeypatch):  # noqa: F811
    server, url = https
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path / "cache"))
    wrong = "0123456789abcdef0123456789abcdef"
    _serve_nmnist(server, url, monkeypatch, {"Train": wrong})
    with pytest.raises(ChecksumError) as info:
        load_dataset("nmnist", 1.0, None)
    assert wrong in str(info.value) and f"{url}/Train.zip" in str(info.value)
    folder = tmp_path / "cache" / "nmnist"
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []


def test_offline_error_names_urls_digests_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("SPIKEFORGE_OFFLINE", "1")
    for name, module, parts in (("nmnist", nmnist, ("Train", "Test")),
                                ("dvsgesture", aedat, ("ibmGestureTrain", "ibmGestureTest"))):
        with pytest.raises(SpikeforgeError) as info:
            load_dataset(name, 5.0, None)
        text = str(info.value)
        assert "\n" not in text and "SPIKEFORGE_OFFLINE" in text
        for archive, part in zip(module.ARCHIVES, parts, strict=True):
            assert archive.url in text and archive.digest in text
            assert str(tmp_path / "cache" / name / part) in text
    assert not any(p.name.endswith((".zip", ".gz")) for p in (tmp_path / "cache").rglob("*"))


def test_pinned_release_checksums():
    """The URLs and MD5 sums tonic publishes (tonic/datasets/nmnist.py, dvsgesture.py)."""
    assert [a.digest for a in nmnist.ARCHIVES] == ["20959b8e626244a1b502305a9e6e2031",
                                                   "69ca8762b2fe404d9b9bad1103e97832"]
    assert [a.digest for a in aedat.ARCHIVES] == ["3a8f0d4120a166bac7591f77409cb105",
                                                  "56070e45dadaa85fff82e0fbfbc06de5"]
    for a in nmnist.ARCHIVES + aedat.ARCHIVES:
        assert a.url.startswith("https://") and a.algorithm == "md5"


def _gesture_tar(folder: str, subjects: list[int], seed: int) -> bytes:
    """tonic's layout: ``<folder>/userNN_led/<class>.npy``, [E, 4] x, y, p, t (ms)."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for subject in subjects:
            for label in range(11):
                ev = aedat.synthetic_gesture_events(label, rng, n_events=80,
                                                    duration_ms=400.0)
                table = np.stack([ev["x"], ev["y"], ev["p"], ev["t"] / 1000.0], 1)
                raw = io.BytesIO()
                np.save(raw, table.astype(np.float64))
                info = tarfile.TarInfo(f"{folder}/user{subject:02d}_led/{label}.npy")
                info.size = raw.getbuffer().nbytes
                raw.seek(0)
                bundle.addfile(info, raw)
    return buffer.getvalue()


def test_dvsgesture_downloads_tonic_release(tmp_path, https, monkeypatch):  # noqa: F811
    server, url = https
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path / "cache"))
    archives = []
    for folder, subjects, seed in (("ibmGestureTrain", [1, 2, 3], 0),
                                   ("ibmGestureTest", [24], 1)):
        data = _gesture_tar(folder, subjects, seed)
        (server.root / f"{folder}.tar.gz").write_bytes(data)
        archives.append(TreeArchive(f"{url}/{folder}.tar.gz", f"{folder}.tar.gz", _md5(data),
                                    "md5", folder))
    monkeypatch.setattr(aedat, "ARCHIVES", tuple(archives))
    s = load_dataset("dvsgesture", 5.0, None, max_time_ms=400.0, val_fraction=0.3)
    assert s.train.speakers.tolist() == [1] * 11 + [2] * 11 and set(s.val.speakers) == {3}
    assert s.test.speakers.tolist() == [24] * 11 and s.test.labels.tolist() == list(range(11))
    (steps, units), label = s.test[10]
    assert label == 10 and steps.size > 0 and units.max() < 2 * 32 * 32


def test_unsafe_or_oversized_archives_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as bundle:
        bundle.writestr("../outside.bin", b"x")
    with pytest.raises(SpikeforgeError, match="unsafe path"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "outside.bin").exists()
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("Train/0/a.bin", bytes(2 << 20))
    with pytest.raises(SpikeforgeError, match="more than the limit of 1048576"):
        extract_archive(big, tmp_path / "out2", Limits(max_unpacked_bytes=1 << 20))


def test_a_202_answer_is_not_taken_for_the_file(tmp_path, https, monkeypatch):  # noqa: F811
    """Some hosts answer scripted requests with HTTP 202 and no body: the error says so
    and gives the manual steps instead of a checksum mismatch."""
    server, url = https
    monkeypatch.setenv("SPIKEFORGE_DATA", str(tmp_path / "cache"))
    _serve_nmnist(server, url, monkeypatch)
    server.RequestHandlerClass = _Accepting
    server.modes["Train.zip"] = "accepted"
    with pytest.raises(SpikeforgeError) as info:
        load_dataset("nmnist", 1.0, None)
    text = str(info.value)
    assert "HTTP 202" in text and f"{url}/Train.zip" in text
    assert str(tmp_path / "cache" / "nmnist" / "Train") in text
