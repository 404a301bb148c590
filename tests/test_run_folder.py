"""Run folders: one writer at a time (locks), resume compares the semantic config, stale
temporary files are cleaned, permissions follow the umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from export_helpers import cli
from spikeforge.atomic import TEMP_MARK, write_text_atomic
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments import run_folder as rf
from spikeforge.experiments.config import RunConfig, load_config
from spikeforge.folder_lock import FolderLock

TINY = ["--epochs", "1", "--set", "model.hidden=[8]", "--set", "train.batch_size=64"]


def _config(**overrides) -> RunConfig:
    return load_config(None, {"model.hidden": [8], **overrides})


# -- locks ------------------------------------------------------------------------------
def test_locked_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    with rf.open_run_folder(out, _config()) as resuming:
        assert resuming is False
        with pytest.raises(SpikeforgeError) as info, rf.open_run_folder(out, _config()):
            pass
        code, _, err = cli("train", *TINY, "--out", str(out), check=False)
    assert f"already in use by PID {os.getpid()} on " in str(info.value)
    assert code == 2 and err.startswith(f"error: run folder {out} is already in use by PID")
    assert len(err.strip().splitlines()) == 1
    assert not (out / "metrics.jsonl").exists()
    with rf.open_run_folder(out, _config()) as resuming:  # released: free again
        assert resuming is True


def test_lock_waits_for_the_holder_when_asked(tmp_path):
    holder = FolderLock(tmp_path).acquire()
    started = time.monotonic()
    with pytest.raises(SpikeforgeError, match="already in use"):
        FolderLock(tmp_path, wait_s=0.5).acquire()
    assert time.monotonic() - started >= 0.5
    holder.release()
    with FolderLock(tmp_path, wait_s=5):
        pass


def test_two_concurrent_trains_into_one_folder_give_one_clean_error(tmp_path):
    out = tmp_path / "run"
    # batch size 4: the winner holds the folder for seconds, so a loser that starts late
    # on a loaded machine still meets the lock instead of a finished run
    cmd = [sys.executable, "-m", "spikeforge.cli", "train", "--epochs", "3", "--set",
           "model.hidden=[16]", "--set", "train.batch_size=4", "--out", str(out), "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "Traceback" not in loser
    # the error is one line (a load warning about threads may precede it)
    errors = [line for line in loser.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "is already in use by PID" in errors[0], loser
    assert loser.strip().splitlines()[-1] == errors[0]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


# -- resume: semantic config ------------------------------------------------------------
def test_resume_accepts_changes_that_do_not_change_results(tmp_path):
    out = tmp_path / "run"
    with rf.open_run_folder(out, _config()):
        pass
    saved = (out / rf.CONFIG).read_text()
    harmless = _config(**{"train.threads": 1, "data.download": False,
                          "data.data_dir": str(tmp_path)})
    with rf.open_run_folder(out, harmless) as resuming:
        assert resuming is True
    assert (out / rf.CONFIG).read_text() == saved  # the original record stays


def test_resume_accepts_a_folder_written_before_new_default_fields(tmp_path):
    out = tmp_path / "run"
    with rf.open_run_folder(out, _config()):
        pass
    tree = yaml.safe_load((out / rf.CONFIG).read_text())
    del tree["model"]["tau_spread"], tree["train"]["surrogate"]  # "older version"
    (out / rf.CONFIG).write_text(yaml.safe_dump(tree))
    with rf.open_run_folder(out, _config()) as resuming:
        assert resuming is True


def test_resume_refuses_changes_that_change_results_naming_them(tmp_path):
    out = tmp_path / "run"
    with rf.open_run_folder(out, _config()):
        pass
    with pytest.raises(SpikeforgeError, match=r"different config \(seed, train.lr\)"), \
            rf.open_run_folder(out, _config(**{"train.lr": 0.5, "seed": 4})):
        pass
    tree = yaml.safe_load((out / rf.CONFIG).read_text())
    tree["model"]["removed_option"] = 1
    (out / rf.CONFIG).write_text(yaml.safe_dump(tree))
    with pytest.raises(SpikeforgeError, match="not valid for this spikeforge version"), \
            rf.open_run_folder(out, _config()):
        pass


def test_cli_resume_with_other_threads_completes(tmp_path):
    out = tmp_path / "run"
    cli("train", *TINY, "--out", str(out), "--json")
    code, stdout, err = cli("train", *TINY, "--set", "train.threads=1", "--out", str(out),
                            "--json")
    assert code == 0 and "already complete" in err
    assert json.loads(stdout.strip().splitlines()[-1])["epochs"] == 1


def test_existing_folder_that_is_not_a_run_gets_no_lock_file(tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SpikeforgeError, match="exists but is not a spikeforge run"), \
            rf.open_run_folder(out, _config()):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# -- temporary files and permissions ---------------------------------------------------
def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    out = tmp_path / "run"
    with rf.open_run_folder(out, _config()):
        pass
    stale = out / f".metrics.jsonl{TEMP_MARK}x1.jsonl"
    stale.write_text("half")
    old_staging = tmp_path / f".run{TEMP_MARK}abc"
    old_staging.mkdir()
    os.utime(old_staging, (time.time() - 3600, time.time() - 3600))
    young_staging = tmp_path / f".run{TEMP_MARK}def"  # maybe a live creator's: kept
    young_staging.mkdir()
    other = tmp_path / f".elsewhere{TEMP_MARK}abc"
    other.mkdir()
    os.utime(other, (time.time() - 3600, time.time() - 3600))
    with rf.open_run_folder(out, _config()):
        pass
    assert not stale.exists() and not old_staging.exists()
    assert young_staging.exists() and other.exists()


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755),
                                                        (0o027, 0o640, 0o750),
                                                        (0o077, 0o600, 0o700)])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        out = tmp_path / "run"
        with rf.open_run_folder(out, _config()):
            write_text_atomic(out / "results.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == dir_mode
    for name in ("results.json", rf.CONFIG, "run.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == file_mode, name


def test_atomic_write_into_a_missing_folder_is_one_line_error(tmp_path):
    with pytest.raises(SpikeforgeError, match=r"folder .*nowhere does not exist"):
        write_text_atomic(tmp_path / "nowhere" / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_read_back_after_atomic_replace(tmp_path):
    path = Path(tmp_path / "a.txt")
    write_text_atomic(path, "one")
    write_text_atomic(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
