"""End-to-end CLI behaviour: training, JSON output, bad input, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SMALL = ["--set", "model.hidden=[32]", "--set", "train.batch_size=8"]


def run_cli(*args, cwd=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "spikeforge.cli", *args], capture_output=True, text=True,
        cwd=cwd, timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_version():
    assert run_cli("--version").stdout.startswith("spikeforge ")


def test_train_writes_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--data", "digits", "--epochs", "2", "--out", str(out), "--json",
                   *SMALL)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"test_accuracy", "epochs", "train_seconds", "run_dir"} <= result.keys()
    assert result["epochs"] == 2 and result["run_dir"] == str(out)
    assert 0.3 < result["test_accuracy"] <= 1.0  # chance is 0.1
    for name in ("config.yaml", "run.json", "metrics.jsonl", "checkpoint.pt", "model.pt",
                 "results.json", "learning_curves.png", "raster.png"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    evaluated = json.loads(run_cli("evaluate", str(out), "--json").stdout.splitlines()[-1])
    assert evaluated["test_accuracy"] == pytest.approx(result["test_accuracy"])


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "nosuch"], "unknown dataset 'nosuch'"),
    (["train", "--set", "model.tau_mem=-5"], "tau_mem must be a positive"),
    (["train", "--set", "train.epochs=0"], "invalid config value train.epochs"),
    (["train", "--set", "model.bogus=1"], "invalid config value model.bogus"),
])
def test_bad_input_is_one_line_error(tmp_path, args, message):
    out = tmp_path / "never"
    proc = run_cli(*args, "--out", str(out), check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_malformed_yaml_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [epochs: 3\n")
    proc = run_cli("train", "--config", str(bad), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "is not valid YAML" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unreadable_checkpoint_is_one_line_error(tmp_path):
    out = tmp_path / "run"
    run_cli("train", "--epochs", "1", "--out", str(out), *SMALL)
    (out / "model.pt").write_bytes(b"not a checkpoint")
    proc = run_cli("evaluate", str(out), check=False)
    assert proc.returncode == 2 and "unreadable" in proc.stderr and "Traceback" not in proc.stderr


def test_kill_and_resume_gives_same_result(tmp_path):
    # one thread: the automatic count follows the machine's load, and a different thread
    # count between the two runs changes float summation order (not what is tested here)
    args = ["train", "--data", "digits", "--epochs", "4", "--json", *SMALL,
            "--set", "train.threads=1"]
    reference = json.loads(run_cli(*args, "--out", str(tmp_path / "ref")).stdout.splitlines()[-1])
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge.cli", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and metrics.read_text().count("\n") >= 1:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists(), "run finished before it could be killed"
    resumed = json.loads(run_cli(*args, "--out", str(out)).stdout.splitlines()[-1])
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    a = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)["model"]
    b = torch.load(out / "model.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]


def test_config_file_and_flags_combine(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epochs: 1\n  batch_size: 16\nmodel:\n  hidden: [16]\n")
    out = tmp_path / "run"
    run_cli("train", "--config", str(cfg), "--seed", "3", "--out", str(out))
    text = (out / "config.yaml").read_text()
    assert "seed: 3" in text and "batch_size: 16" in text and "- 16" in text
    assert Path(out / "results.json").is_file()
