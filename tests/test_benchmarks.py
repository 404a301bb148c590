"""The benchmark harness (benchmarks/) stays runnable: the shared task definition, the
spikeforge and plain-PyTorch implementations (in-process, tiny), and the orchestrator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import impl_spikeforge  # noqa: E402
import impl_torch  # noqa: E402
import task as tk  # noqa: E402

FIELDS = (
    "impl", "mode", "n_steps", "batch", "n_hidden", "s_per_step", "cpu_s_per_step",
    "samples_per_s", "train_mem_mb", "peak_rss_mb", "hidden_rate_hz", "finite",
)  # fmt: skip
TINY = ["--T", "40", "--batch", "4", "--steps", "1", "--warmup", "1", "--threads", "1"]


@pytest.fixture
def isolated_threads(monkeypatch):
    """The implementations pin thread counts; undo that for the rest of the session."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):  # fmt: skip
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)
    threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    yield
    torch.set_num_threads(threads)
    numba.set_num_threads(numba_threads)


def _check_record(r: dict, impl: str) -> None:
    for field in FIELDS:
        assert field in r, field
    assert r["impl"] == impl and r["mode"] == "train"
    assert r["n_steps"] == 40 and r["batch"] == 4 and r["finite"] is True
    assert r["s_per_step"] > 0 and r["peak_rss_mb"] > 0 and r["train_mem_mb"] >= 0
    assert len(r["s_per_step_all"]) == 2


def test_task_inputs_are_seeded_bernoulli():
    task = tk.Task(n_steps=200, batch=8)
    x = tk.make_inputs(task, step=3)
    assert x.shape == (8, 200, tk.N_INPUTS)
    np.testing.assert_array_equal(x, tk.make_inputs(task, step=3))
    assert not np.array_equal(x, tk.make_inputs(task, step=4))
    assert abs(x.mean() - tk.INPUT_P) < 0.002
    w = tk.make_weights(task)
    assert w["w_in"].shape == (task.n_hidden, tk.N_INPUTS)
    assert w["w_rec"].shape == (task.n_hidden, task.n_hidden)
    assert w["w_out"].shape == (tk.N_CLASSES, task.n_hidden)


def test_weight_scale_equalises_charge_per_spike():
    alpha_mem, alpha_syn, syn_gain = tk.decays()
    assert tk.weight_scale(syn_gain) == pytest.approx(1.0)
    # Euler (Norse): gain dt/tau_mem, current decay 1 - dt/tau_syn
    s = tk.weight_scale(0.05, 0.8)
    assert s * 0.05 / (1 - 0.8) == pytest.approx(syn_gain / (1 - alpha_syn))


def test_spikeforge_and_torch_records_agree(isolated_threads, capsys):
    sf = impl_spikeforge.main([*TINY, "--backend", "event"])
    pt = impl_torch.main(TINY)
    _check_record(sf, "spikeforge-event")
    _check_record(pt, "torch-bptt")
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["impl"] for p in printed] == ["spikeforge-event", "torch-bptt"]
    # Same dynamics, same weights, same first batch: same hidden activity before training.
    assert sf["hidden_rate_first_hz"] > 0
    assert sf["hidden_rate_first_hz"] == pytest.approx(pt["hidden_rate_first_hz"], rel=0.02)


def test_public_api_path_trains_like_the_native_path(isolated_threads):
    """The README's drop-in path (dense [B, T, 700] tensor, default layers) and the native
    path (sparse Events, dense_output=False) compute the same training steps."""
    native = impl_spikeforge.main([*TINY, "--backend", "event"])
    api = impl_spikeforge.main([*TINY, "--backend", "event", "--input", "dense"])
    _check_record(api, "spikeforge-api")
    assert api["hidden_rate_first_hz"] > 0
    assert api["hidden_rate_first_hz"] == native["hidden_rate_first_hz"]
    assert api["hidden_rate_last_hz"] == native["hidden_rate_last_hz"]
    assert api["loss_first"] == pytest.approx(native["loss_first"], rel=1e-5)
    assert api["loss_last"] == pytest.approx(native["loss_last"], rel=1e-5)


def test_inference_mode_makes_no_update(isolated_threads, capsys):
    r = impl_torch.main([*TINY, "--mode", "infer"])
    assert r["mode"] == "infer" and r["finite"] is True and r["s_per_step"] > 0
    trained = impl_torch.main(TINY)
    # Batch 0 runs on the initial weights in both modes: same activity and loss.
    assert r["hidden_rate_first_hz"] == trained["hidden_rate_first_hz"]
    assert r["loss_first"] == trained["loss_first"]
    # Batch 1 follows one Adam step in train mode only: had inference updated the
    # weights the same way, its batch-1 rate and loss would equal the trained ones.
    assert r["hidden_rate_last_hz"] != trained["hidden_rate_last_hz"]
    assert r["loss_last"] != trained["loss_last"]
    # ... and with no update, inference is repeatable batch for batch.
    again = impl_torch.main([*TINY, "--mode", "infer"])
    assert again["hidden_rate_last_hz"] == r["hidden_rate_last_hz"]
    assert again["loss_last"] == r["loss_last"]


def test_orchestrator_writes_jsonl_and_table(tmp_path):
    out = tmp_path / "r.jsonl"
    cmd = [sys.executable, str(BENCH / "run.py"), "--quick", "--impls", "torch-bptt",
           *TINY, "--no-inference", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["meta"] is True
    assert [(r["impl"], r["section"]) for r in lines[1:]] == [("torch-bptt", "train")]
    _check_record(lines[1], "torch-bptt")
    table = out.with_suffix(".md").read_text()
    assert "| torch-bptt | 40 | 4 | 256 |" in table
    assert "## Inference" not in table


def test_unknown_impl_is_a_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--impls", "nope", "--out",
         str(tmp_path / "r.jsonl")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown implementation")
    assert not (tmp_path / "r.jsonl").exists()


def test_speaker_benchmark_uniform_adlif_rows_build_valid_configs(tmp_path):
    """The ``adlif_uniform_*`` rows of benchmarks/speaker_generalisation.py pass settings
    the config accepts, giving a hidden layer whose neurons differ in a, b, tau_w."""
    import speaker_generalisation as sg

    from spikeforge.experiments.config import load_config, parse_override
    from spikeforge.neurons import AdLIFParams

    for row in ("adlif_uniform_eventprop", "adlif_uniform_bptt"):
        command = sg.command_of(row, tmp_path, 2, 0, tmp_path / row, 1)
        sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
        assert all(s in sets for s in sg.UNIFORM_ADLIF)
        assert str(sg.ADLIF_CONFIG) in command
        config = load_config(sg.ADLIF_CONFIG, dict(parse_override(s) for s in sets))
        params = config.model.network_spec(700, 20, 1.0, False).layers[0].neuron
        assert isinstance(params, AdLIFParams) and params.adaptation_init == "uniform"
        assert params.b_range == (0.0, 0.4) and params.tau_adapt_range == (30.0, 300.0)
