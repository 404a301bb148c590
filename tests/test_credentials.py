"""Sweep storage credentials: --storage-env and --storage-file, the warning for a password
on the command line, and no password in worker command lines or task payloads."""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="sweeps need optuna: pip install spikeforge[sweep]")

from credential_tasks import record_what_the_worker_sees  # noqa: E402
from services import postgres_server, postgres_url  # noqa: E402, F401
from spikeforge.errors import SpikeforgeError  # noqa: E402
from spikeforge.experiments.credentials import (  # noqa: E402
    INHERITED_ENV,
    read_storage_file,
    resolve_storage,
    storage_from_options,
)
from spikeforge.experiments.sweep import load_sweep, run_sweep  # noqa: E402

SPACE = "train.lr: {low: 1.0e-3, high: 5.0e-2, log: true}\n"


def _space(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def _secret_file(path: Path, url: str, mode: int = 0o600) -> Path:
    path.write_text(url + "\n")
    os.chmod(path, mode)
    return path


def _what_workers_saw(out: Path) -> list[tuple[bytes, bytes, dict]]:
    """(command line, pickled payload, payload) of every trial's worker."""
    seen = []
    for trial in sorted((out / "trials").iterdir()):
        raw = (trial / "payload.pkl").read_bytes()
        seen.append(((trial / "cmdline").read_bytes(), raw, pickle.loads(raw)))
    assert seen, "no worker ran"
    return seen


# -- reading the URL ------------------------------------------------------------------
def test_storage_file_mode_is_checked(tmp_path):
    url = "postgresql://me:pw@db/x"
    path = _secret_file(tmp_path / "storage.url", url, 0o644)
    with pytest.raises(SpikeforgeError) as info:
        read_storage_file(path)
    assert str(info.value) == (f"storage file {path} is readable by every user (mode 0644); "
                               f"restrict it with: chmod 600 {path}")
    os.chmod(path, 0o640)  # the group may read it (a project group on a cluster)
    assert read_storage_file(path) == url
    os.chmod(path, 0o600)
    assert resolve_storage({"file": str(path)}) == url
    path.write_text("\n  \n")
    with pytest.raises(SpikeforgeError, match="is empty"):
        read_storage_file(path)
    with pytest.raises(SpikeforgeError, match="cannot read the storage file"):
        read_storage_file(tmp_path / "missing")


def test_storage_env(monkeypatch):
    monkeypatch.setenv("SF_TEST_DB", " postgresql://me:pw@db/x ")
    assert storage_from_options(storage_env="SF_TEST_DB") == (
        "postgresql://me:pw@db/x", {"env": "SF_TEST_DB"})
    monkeypatch.delenv("SF_TEST_DB")
    with pytest.raises(SpikeforgeError, match="environment variable SF_TEST_DB .* is not set"):
        resolve_storage({"env": "SF_TEST_DB"})


def test_options_exclude_each_other_and_plain_urls_pass(tmp_path, monkeypatch, recwarn):
    monkeypatch.setenv("SF_TEST_DB", "sqlite:///x.db")
    with pytest.raises(SpikeforgeError, match="give only one of --storage, --storage-env"):
        storage_from_options("sqlite:///x.db", "SF_TEST_DB")
    assert storage_from_options("postgresql://me@db/x") == ("postgresql://me@db/x",
                                                           "postgresql://me@db/x")
    assert storage_from_options() == (None, None)
    assert len(recwarn) == 0  # no password, no warning


@pytest.mark.parametrize("url", ["postgresql://me:s3cret@db/x",
                                 "postgresql://me@db/x?password=s3cret"])
def test_password_on_the_command_line_warns_and_travels_by_environment(url, monkeypatch):
    monkeypatch.delenv(INHERITED_ENV, raising=False)
    with pytest.warns(UserWarning, match="visible to every user .* use --storage-env NAME "
                                         "or --storage-file PATH") as caught:
        given, ref = storage_from_options(url)
    assert "s3cret" not in str(caught[0].message)
    assert given == url and ref == {"env": INHERITED_ENV}
    assert os.environ[INHERITED_ENV] == url  # what the workers started from here inherit


def test_cli_refuses_a_world_readable_storage_file(tmp_path):
    path = _secret_file(tmp_path / "storage.url", "postgresql://me:pw@db/x", 0o604)
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", "sweep", "--space",
                           str(_space(tmp_path)), "--out", str(out), "--storage-file", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: storage file {path} is readable by every user "
                                   f"(mode 0604); restrict it with: chmod 600 {path}")
    assert not out.exists()


def test_cli_warns_about_a_password_in_storage(tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", "sweep", "--space",
                           str(_space(tmp_path)), "--out", str(out), "--storage",
                           "postgresql://nobody:s3cret@127.0.0.1:9/none"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "visible to every user" in proc.stderr and "--storage-env NAME" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot open sweep storage")
    assert "s3cret" not in proc.stderr and not out.exists()


# -- what the workers get -------------------------------------------------------------
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_storage_env_reaches_workers_by_name_only(tmp_path, monkeypatch, executor):
    if executor == "dask":
        pytest.importorskip("distributed", reason="the dask executor needs dask[distributed]")
    token = "tok-4b1d9e"  # stands for a secret: it is only in the URL
    store = tmp_path / token
    store.mkdir()
    url = f"sqlite:///{store / 'study.db'}"
    monkeypatch.setenv("SF_TEST_DB", url)
    out = tmp_path / "sweep"
    summary = run_sweep(None, _space(tmp_path), out, trials=2, sampler="random", workers=1,
                        executor=executor, pruner="none", storage_env="SF_TEST_DB",
                        task=record_what_the_worker_sees)
    assert summary["n_complete"] == 2
    for cmdline, raw, payload in _what_workers_saw(out):
        assert payload["storage"] == {"env": "SF_TEST_DB"}
        assert token.encode() not in raw and token.encode() not in cmdline
    study, _ = load_sweep(out, url)
    values = sorted(t.value for t in study.trials)
    assert values == [0.51, 0.52]  # each worker opened the store and saw its trials


@pytest.mark.parametrize("how", ["env", "file", "argv"])
def test_password_never_reaches_worker_argv_or_payload(tmp_path, postgres_url, monkeypatch,  # noqa: F811
                                                       how):
    secret = "pw-7c2f0a"  # the test server trusts local connections; the password is sent
    url = postgres_url.replace("postgres@", f"postgres:{secret}@")
    assert secret in url
    monkeypatch.delenv(INHERITED_ENV, raising=False)
    monkeypatch.setenv("SF_TEST_DB", url)
    path = _secret_file(tmp_path / "storage.url", url)
    option, ref = {"env": ({"storage_env": "SF_TEST_DB"}, {"env": "SF_TEST_DB"}),
                   "file": ({"storage_file": path}, {"file": str(path)}),
                   "argv": ({"storage": url}, {"env": INHERITED_ENV})}[how]
    out = tmp_path / "sweep"
    with pytest.warns(UserWarning, match="visible to every user") if how == "argv" \
            else contextlib.nullcontext():
        summary = run_sweep(None, _space(tmp_path), out, trials=2, sampler="random",
                            pruner="none", task=record_what_the_worker_sees, **option)
    assert summary["n_complete"] == 2
    for cmdline, raw, payload in _what_workers_saw(out):
        assert payload["storage"] == ref
        assert secret.encode() not in raw and secret.encode() not in cmdline
    assert secret not in (out / "sweep.json").read_text()
    study, _ = load_sweep(out, url)
    assert sorted(t.value for t in study.trials) == [0.51, 0.52]
