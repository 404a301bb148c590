#!/usr/bin/env python
"""Accuracy on unseen speakers of an SHD-format set: logistic regression against SNN recipes.

Rows (``--rows``, comma-separated; default all):

* ``logreg``: ``scripts/logreg_baseline.py`` (log spike counts in 10 time bins x 70
  channel groups, L-BFGS), no epochs;
* ``lif_eventprop``, ``lif_bptt``: ``spikeforge train --config configs/shd_eventprop.yaml
  --data shd`` with ``--method eventprop`` / ``bptt``;
* ``adlif_eventprop``, ``adlif_bptt``: the same network with adLIF hidden neurons,
  ``configs/shd_adlif.yaml`` (the LIF recipe plus the adLIF values: a = 0.5, b = 0.1,
  tau_w = 100 ms);
* ``adlif_uniform_eventprop``, ``adlif_uniform_bptt``: adLIF with a heterogeneous
  population (``model.adlif_init=uniform``: every neuron's a, b, tau_w drawn in
  [-0.5, 1], [0, 0.4], [30, 300] ms; :data:`UNIFORM_ADLIF`);
* ``snntorch_bptt``: the same network written with snnTorch 1.0 (``RSynaptic`` hidden
  layer, all-to-all recurrent, reset to zero, atan surrogate; ``Synaptic`` readout
  without reset), trained by BPTT on the same batches as spikeforge (the recipe's
  speaker validation split, channel shift, appended blends, delay lines), with the same
  initial weight distribution, loss (``sum_exp``), spike-count regulariser, Adam,
  learning rate, warm-up, batch size and epochs. snnTorch adds the synaptic current to
  the membrane with gain 1 per step, so its weights (and the learning rate) are scaled
  by spikeforge's per-step gain tau_syn / (tau_syn - tau_mem) (alpha_syn - alpha_mem)
  (equal charge per input spike). The input layer is applied as one sparse x dense
  product of the input events (CSR ``[B*T, inputs]``) and the weights, the same
  O(events) product that spikeforge's BPTT layers use (before 2026-12-03 it was an
  ``index_add`` of gathered weight rows, which builds an [events, hidden] tensor and
  was ~1.7x slower per batch); the time loop is snnTorch's.

Every run (row x seed) is its own process. A spikeforge row that the installed
spikeforge refuses (e.g. ``model.neuron=adlif`` before the adLIF neuron exists) is
recorded as not run, with the error line. Output: ``--out DIR/results.json`` (per row:
test accuracy on the test file's speakers per seed, mean and standard deviation over
seeds, seconds per epoch, the command) and ``DIR/results.md`` (a markdown table, also
printed).

    python benchmarks/speaker_generalisation.py --data-dir /work/devdata/spoken_digits \\
        --epochs 10 --seeds 1
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "shd_eventprop.yaml"
ADLIF_CONFIG = ROOT / "configs" / "shd_adlif.yaml"
"""The LIF recipe with adLIF hidden neurons (the adLIF rows)."""
ROWS: dict[str, dict[str, Any]] = {
    "logreg": {"label": "logistic regression (binned counts)"},
    "lif_eventprop": {"label": "LIF EventProp", "method": "eventprop", "neuron": "lif"},
    "lif_bptt": {"label": "LIF BPTT", "method": "bptt", "neuron": "lif"},
    "adlif_eventprop": {"label": "adLIF EventProp", "method": "eventprop", "neuron": "adlif"},
    "adlif_bptt": {"label": "adLIF BPTT", "method": "bptt", "neuron": "adlif"},
    "adlif_uniform_eventprop": {"label": "adLIF EventProp, per-neuron a, b, tau_w",
                                "method": "eventprop", "neuron": "adlif", "extra": "uniform"},
    "adlif_uniform_bptt": {"label": "adLIF BPTT, per-neuron a, b, tau_w", "method": "bptt",
                           "neuron": "adlif", "extra": "uniform"},
    "snntorch_bptt": {"label": "snnTorch BPTT (LIF)"},
}
UNIFORM_ADLIF = ["model.adlif_init=uniform", "model.adlif_a_range=[-0.5,1.0]",
                 "model.adlif_b_range=[0.0,0.4]", "model.adlif_tau_w_range=[30.0,300.0]"]
"""The settings of the ``adlif_uniform_*`` rows."""


def _last_json(stdout: str) -> dict | None:
    """The JSON object on the last non-empty line of ``stdout``, else None."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _error_line(stderr: str, stdout: str) -> str:
    """The most telling line of a failed run's output (its ``error:`` line if any)."""
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def spikeforge_program() -> str:
    """The ``spikeforge`` program next to this Python (a venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "spikeforge"
    return str(local) if local.is_file() else (shutil.which("spikeforge") or "spikeforge")


def command_of(row: str, data_dir: Path, epochs: int, seed: int, run_dir: Path,
               threads: int) -> list[str]:
    """The command line of one run of ``row`` (a fresh process)."""
    if row == "logreg":
        return [sys.executable, str(ROOT / "scripts" / "logreg_baseline.py"), "--data-dir",
                str(data_dir), "--seed", str(seed)]
    if row == "snntorch_bptt":
        return [sys.executable, str(Path(__file__).resolve()), "--snntorch-seed", str(seed),
                "--data-dir", str(data_dir), "--epochs", str(epochs), "--threads",
                str(threads)]
    spec = ROWS[row]
    config = ADLIF_CONFIG if spec["neuron"] == "adlif" else CONFIG
    command = [spikeforge_program(), "train", "--config", str(config),
               "--data", "shd", "--data-dir", str(data_dir), "--epochs", str(epochs),
               "--seed", str(seed), "--method", spec["method"], "--out", str(run_dir),
               "--set", f"train.threads={threads}", "--json"]
    if spec.get("extra") == "uniform":
        for setting in UNIFORM_ADLIF:
            command += ["--set", setting]
    return command


def run_one(row: str, data_dir: Path, epochs: int, seed: int, out: Path, threads: int,
            timeout_s: float) -> dict[str, Any]:
    """Run ``row`` with ``seed`` in a subprocess; returns its record (``ok`` False with
    ``error`` when it failed)."""
    run_dir = out / "runs" / row / f"seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a fresh run, not a resumed one
    command = command_of(row, data_dir, epochs, seed, run_dir, threads)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"seed": seed, "ok": False, "error": f"timed out after {timeout_s:.0f} s",
                "wall_s": round(time.perf_counter() - start, 1)}
    wall = round(time.perf_counter() - start, 1)
    result = _last_json(done.stdout) if done.returncode == 0 else None
    if result is None or "test_accuracy" not in result:
        return {"seed": seed, "ok": False, "wall_s": wall, "returncode": done.returncode,
                "error": _error_line(done.stderr, done.stdout)}
    record = {"seed": seed, "ok": True, "wall_s": wall,
              "test_accuracy": float(result["test_accuracy"])}
    if row == "logreg":
        record["train_accuracy"] = result.get("train_accuracy")
    else:
        n_epochs = int(result.get("epochs") or epochs)
        record["train_seconds"] = float(result["train_seconds"])
        record["seconds_per_epoch"] = round(record["train_seconds"] / max(n_epochs, 1), 1)
        record["val_accuracy"] = result.get("val_accuracy")
    return record


def summarise(row: str, runs: list[dict], command: list[str]) -> dict[str, Any]:
    """Mean and standard deviation (ddof 1; 0 for one seed) of the successful runs."""
    ok = [r for r in runs if r["ok"]]
    accs = [r["test_accuracy"] for r in ok]
    summary: dict[str, Any] = {"row": row, "label": ROWS[row]["label"], "runs": runs,
                               "command": " ".join(command)}
    if not accs:
        summary.update(status="not run", error=runs[0]["error"] if runs else "no seeds")
        return summary
    mean = sum(accs) / len(accs)
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 \
        else 0.0
    summary.update(status="ok", seeds_ok=len(accs), test_accuracy=accs,
                   mean=round(mean, 4), std=round(std, 4))
    per_epoch = [r["seconds_per_epoch"] for r in ok if "seconds_per_epoch" in r]
    summary["seconds_per_epoch"] = (round(sum(per_epoch) / len(per_epoch), 1) if per_epoch
                                    else None)
    return summary


def markdown(rows: list[dict], epochs: int, seeds: list[int]) -> str:
    """The README table of ``rows`` (summaries of :func:`summarise`)."""
    lines = [f"budget: {epochs} epochs per SNN row (unless its epochs column says "
             f"otherwise), {len(seeds)} seed{'s' * (len(seeds) != 1)} "
             f"({', '.join(map(str, seeds))})", "",
             "| row | epochs | test accuracy, unseen speakers | per seed | s per epoch |",
             "|---|---|---|---|---|"]
    for r in rows:
        n = "-" if r.get("epochs") is None else str(r["epochs"])
        if r["status"] != "ok":
            lines.append(f"| {r['label']} | {n} | not run: {r['error']} | | |")
            continue
        acc = f"{r['mean']:.3f}" + (f" ± {r['std']:.3f}" if r["seeds_ok"] > 1 else "")
        per_seed = ", ".join(f"{a:.3f}" for a in r["test_accuracy"])
        spe = "-" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.0f}"
        lines.append(f"| {r['label']} | {n} | {acc} | {per_seed} | {spe} |")
    return "\n".join(lines) + "\n"


# -- snnTorch row ----------------------------------------------------------------------
def snntorch_run(data_dir: Path, epochs: int, seed: int, threads: int) -> dict[str, Any]:
    """Train the recipe's network in snnTorch (see the module docstring); returns
    ``{"test_accuracy", "val_accuracy", "train_seconds", "epochs"}``."""
    import numpy as np
    import snntorch
    import torch

    from spikeforge.data.augment import Augmenter
    from spikeforge.data.base import iterate_batches
    from spikeforge.data.registry import load_data
    from spikeforge.experiments.config import load_config
    from spikeforge.nn.bptt_layers import event_currents
    from spikeforge.train.losses import readout_summary

    config = load_config(CONFIG, {"data.data_dir": str(data_dir), "data.name": "shd",
                                  "train.epochs": epochs, "seed": seed})
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    m, t, d = config.model, config.train, config.data
    splits = load_data(d)
    n_in, n_hidden, n_classes = splits.train.n_inputs, m.hidden[0], splits.train.n_classes
    alpha_mem, alpha_syn = math.exp(-d.dt / m.tau_mem), math.exp(-d.dt / m.tau_syn)
    gain = m.tau_syn / (m.tau_syn - m.tau_mem) * (alpha_syn - alpha_mem)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(seed)
            w_in = rng.normal(m.input_weight_mean, m.input_weight_std / math.sqrt(n_in),
                              (n_in, n_hidden))
            self.w_in = torch.nn.Parameter(torch.tensor(w_in * gain, dtype=torch.float32))
            self.lif = snntorch.RSynaptic(alpha=alpha_syn, beta=alpha_mem, all_to_all=True,
                                          linear_features=n_hidden, threshold=m.threshold,
                                          reset_mechanism="zero")
            self.fc_out = torch.nn.Linear(n_hidden, n_classes, bias=False)
            self.readout = snntorch.Synaptic(alpha=alpha_syn, beta=alpha_mem,
                                             reset_mechanism="none")
            with torch.no_grad():
                w_rec = rng.normal(0.0, m.recurrent_std / math.sqrt(n_hidden),
                                   (n_hidden, n_hidden)) if m.recurrent else 0.0
                self.lif.recurrent.weight.copy_(torch.as_tensor(w_rec * gain))
                self.lif.recurrent.bias.zero_()
                self.fc_out.weight.copy_(torch.as_tensor(
                    rng.normal(0.0, m.readout_weight_std / math.sqrt(n_hidden),
                               (n_classes, n_hidden)) * gain))
            if not m.recurrent:
                self.lif.recurrent.weight.requires_grad_(False)

        def forward(self, events) -> tuple[torch.Tensor, torch.Tensor]:
            """Readout voltages [B, T, classes] and hidden spike counts [B, hidden]."""
            drive = event_currents(events, self.w_in.t())  # [B, T, hidden]
            spk, syn, mem = self.lif.reset_mem()
            syn_o, mem_o = self.readout.reset_mem()
            volts, count = [], 0.0
            for h_t in drive.unbind(1):
                spk, syn, mem = self.lif(h_t, spk, syn, mem)
                _, syn_o, mem_o = self.readout(self.fc_out(spk), syn_o, mem_o)
                volts.append(mem_o)
                count = count + spk
            return torch.stack(volts, 1), count

    net = Net()
    optimiser = torch.optim.Adam(net.parameters(), lr=t.lr * gain)
    augmenter = Augmenter.from_specs(d.augment, splits.train)
    target = t.reg_target_hz * splits.train.n_steps * d.dt / 1000.0
    batch_index, elapsed = 0, 0.0

    def accuracy(dataset) -> float:
        hits = 0
        with torch.no_grad():
            for events, labels in iterate_batches(dataset, t.batch_size, shuffle=False):
                v, _ = net(events)
                hits += int((readout_summary(v, t.loss).argmax(1) == labels).sum())
        return hits / max(len(dataset), 1)

    val = None
    for epoch in range(epochs):
        start = time.perf_counter()
        dataset = augmenter.epoch_dataset(seed, epoch) if augmenter else splits.train
        transform = augmenter.for_epoch(seed, epoch) if augmenter.transforms else None
        for events, labels in iterate_batches(dataset, t.batch_size, shuffle=True,
                                              seed=seed * 1000 + epoch, transform=transform):
            if t.lr_warmup == "ease_in":
                for group in optimiser.param_groups:
                    group["lr"] = t.lr * gain * min(1.0, 1e-3 * 1.05 ** batch_index)
            v, count = net(events)
            loss = torch.nn.functional.cross_entropy(readout_summary(v, t.loss), labels)
            loss = loss + 0.5 * t.reg_strength * ((count - target) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            batch_index += 1
        elapsed += time.perf_counter() - start
        val = accuracy(splits.val) if len(splits.val) else None
        print(f"epoch {epoch + 1}: loss {float(loss):.3f}, val {val}, "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return {"test_accuracy": accuracy(splits.test), "val_accuracy": val,
            "train_seconds": round(elapsed, 3), "epochs": epochs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, metavar="DIR", required=True,
                        help="folder with shd_train.h5 and shd_test.h5")
    parser.add_argument("--epochs", type=int, metavar="N", default=10,
                        help="training epochs of every SNN row (default 10)")
    parser.add_argument("--seeds", metavar="N|LIST", default="1",
                        help="number of seeds (0..N-1) or a comma list such as 0,3 or 2, "
                             "(default 1)")
    parser.add_argument("--rows", metavar="LIST", default=",".join(ROWS),
                        help=f"comma-separated rows (default all: {','.join(ROWS)})")
    parser.add_argument("--row-epochs", metavar="ROW=N,...", default="",
                        help="epochs of named rows instead of --epochs, e.g. lif_bptt=2 "
                             "(the table states each row's epochs)")
    parser.add_argument("--threads", type=int, metavar="N", default=1,
                        help="CPU threads of every run (default 1)")
    parser.add_argument("--timeout", type=float, metavar="S", default=7200.0,
                        help="seconds before one run is stopped (default 7200)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        default=ROOT / "runs" / "speaker_generalisation",
                        help="results.json, results.md and the run folders (default "
                             "runs/speaker_generalisation)")
    parser.add_argument("--snntorch-seed", type=int, help=argparse.SUPPRESS)  # one run
    args = parser.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    try:
        seeds = ([int(s) for s in args.seeds.split(",") if s.strip()] if "," in args.seeds
                 else list(range(int(args.seeds))))
    except ValueError:
        seeds = []
    problems = [f"unknown row {r!r}; choose from {', '.join(ROWS)}" for r in rows
                if r not in ROWS]
    if not seeds or min(seeds) < 0:
        problems.append(f"--seeds must be a count >= 1 or a list of seeds >= 0, got "
                        f"{args.seeds!r}")
    row_epochs: dict[str, int] = {}
    for item in filter(None, (i.strip() for i in args.row_epochs.split(","))):
        name, _, value = item.partition("=")
        if name not in ROWS or not value.isdigit() or int(value) < 1:
            problems.append(f"--row-epochs item {item!r} must be ROW=N with a known row and "
                            "N >= 1")
        else:
            row_epochs[name] = int(value)
    if args.epochs < 1 or args.threads < 1:
        problems.append("--epochs and --threads must be >= 1")
    if not rows:
        problems.append("--rows is empty")
    for name in ("shd_train.h5", "shd_test.h5"):
        if not (args.data_dir / name).is_file():
            problems.append(f"{args.data_dir / name} is missing; --data-dir must hold "
                            "shd_train.h5 and shd_test.h5")
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    data_dir = args.data_dir.resolve()
    if args.snntorch_seed is not None:  # one run of the snntorch_bptt row
        print(json.dumps(snntorch_run(data_dir, args.epochs, args.snntorch_seed,
                                      args.threads)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for row in rows:
        runs = []
        epochs = row_epochs.get(row, args.epochs)
        for seed in seeds:
            print(f"{row} seed {seed} ...", file=sys.stderr, flush=True)
            record = run_one(row, data_dir, epochs, seed, args.out, args.threads,
                             args.timeout)
            print(f"  {json.dumps(record)}", file=sys.stderr, flush=True)
            runs.append(record)
            if not record["ok"] and row != "logreg" and len(runs) == 1 and \
                    "timed out" not in record["error"]:
                break  # refused by spikeforge: the other seeds would be refused alike
        command = command_of(row, data_dir, epochs, seeds[0],
                             args.out / "runs" / row / f"seed{seeds[0]}", args.threads)
        summaries.append({**summarise(row, runs, command),
                          "epochs": None if row == "logreg" else epochs})
        _write(args.out, summaries, args, data_dir, seeds, row_epochs)  # after every row
    print(markdown(summaries, args.epochs, seeds))
    return 0


def _write(out: Path, summaries: list[dict], args: argparse.Namespace, data_dir: Path,
           seeds: list[int], row_epochs: dict[str, int]) -> None:
    """results.json and results.md of the rows finished so far."""
    report = {"date": time.strftime("%Y-%m-%d"), "data_dir": str(data_dir),
              "epochs": args.epochs, "row_epochs": row_epochs, "seeds": seeds,
              "threads": args.threads, "rows": summaries}
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "results.md").write_text(markdown(summaries, args.epochs, seeds))


if __name__ == "__main__":
    sys.exit(main())
