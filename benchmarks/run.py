"""Run every implementation on the benchmark task, each in its own subprocess.

    python benchmarks/run.py --quick     # T = 100 only, ~2 minutes on an idle machine
    python benchmarks/run.py             # full: T = 100/500/1000, inference, scaling

Run it with the project venv's Python (spikeforge is imported from there). Peer
libraries come from ``benchmarks/.venv-peers`` (``benchmarks/setup_peers.sh``) and mlGeNN
from ``benchmarks/.venv-mlgenn`` (``benchmarks/setup_mlgenn.sh``); implementations whose
interpreter is missing are reported as skipped with the command that installs them.

Every child prints one JSON record; the orchestrator appends it to the results file
(JSON lines, rewritten atomically after every child, so an interrupted run leaves a
valid file) and prints markdown tables at the end (also written next to the results
as ``.md``). See benchmarks/README.md for the protocol and the columns.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from spikeforge.atomic import write_text_atomic  # noqa: E402
from spikeforge.errors import SpikeforgeError  # noqa: E402


@dataclass(frozen=True)
class Impl:
    """One implementation: its script, extra arguments and which interpreter runs it."""

    name: str
    script: str
    args: tuple[str, ...]
    venv: str  # "project", "peers" or "mlgenn"


IMPLS = {
    "spikeforge-event": Impl("spikeforge-event", "impl_spikeforge.py", ("--backend", "event"),
                             "project"),
    "spikeforge-api": Impl("spikeforge-api", "impl_spikeforge.py",
                           ("--backend", "event", "--input", "dense"), "project"),
    "spikeforge-reference": Impl("spikeforge-reference", "impl_spikeforge.py",
                                 ("--backend", "reference"), "project"),
    "torch-bptt": Impl("torch-bptt", "impl_torch.py", (), "project"),
    "snntorch": Impl("snntorch", "impl_snntorch.py", (), "peers"),
    "norse": Impl("norse", "impl_norse.py", (), "peers"),
    "spikingjelly": Impl("spikingjelly", "impl_spikingjelly.py", (), "peers"),
    "mlgenn": Impl("mlgenn", "impl_mlgenn.py", (), "mlgenn"),
}  # fmt: skip
BASELINE = "spikeforge-event"
TORCH_PEERS = ("torch-bptt", "snntorch", "norse", "spikingjelly")
SETUP_HINT = {
    "peers": "run benchmarks/setup_peers.sh",
    "mlgenn": "run benchmarks/setup_mlgenn.sh GENN_SRC ML_GENN_SRC (see benchmarks/README.md)",
}


def git_revision() -> str:
    """The checked-out commit (with "+dirty" when the work tree has changes), or "?"."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (rev or "?") + ("+dirty" if dirty.strip() else "")


def interpreter(venv: str, args) -> Path:
    """The Python that runs implementations of ``venv``."""
    if venv == "project":
        return Path(args.python or sys.executable)
    path = Path(getattr(args, f"{venv}_venv")) / "bin" / "python"
    return path


def run_child(impl: Impl, cli: list[str], args, label: dict) -> dict:
    """Run one implementation in a fresh subprocess; return its record or an error."""
    python = interpreter(impl.venv, args)
    base = {"impl": impl.name, **label}
    if not python.exists():
        return {**base, "skipped": f"{python} not found; {SETUP_HINT[impl.venv]}"}
    cmd = [str(python), str(HERE / impl.script), *impl.args, *cli, "--json"]
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS"):  # fmt: skip
        env[var] = str(args.threads)
    started, load = time.time(), round(os.getloadavg()[0], 2)
    # Own process group, so a timeout (or Ctrl-C) ends the child and anything it started.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=args.timeout)
    except BaseException as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            return {**base, "error": f"timed out after {args.timeout} s"}
        raise
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        return {**base, "error": f"exit {proc.returncode}: " + " | ".join(tail)}
    record = json.loads(lines[-1])
    record.update(label)
    record["wall_total_s"] = round(time.time() - started, 2)
    record["loadavg_1min_at_start"] = load
    return record


class Results:
    """Collects records and rewrites the JSON-lines file atomically after each one."""

    def __init__(self, path: Path, meta: dict) -> None:
        self.path = path
        self.records: list[dict] = [meta]

    def add_all(self) -> None:
        """Rewrite the whole file (atomically) with the records collected so far."""
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.add_all()
        status = record.get("error") or record.get("skipped")
        if status:
            print(f"  {record['impl']:<22} {status}", flush=True)
        else:
            print(
                f"  {record['impl']:<22} T={record['n_steps']:<5} B={record['batch']:<4} "
                f"H={record['n_hidden']:<5} {record['mode']:<5} {record['s_per_step']:.4f} s/step "
                f"(cpu {record['cpu_s_per_step']:.4f}) mem {record['train_mem_mb']:.0f} MB "
                f"rate {record['hidden_rate_hz']:.1f} Hz",
                flush=True,
            )


def common_cli(args, T: int, batch: int, hidden: int, mode: str) -> list[str]:
    return [
        "--T", str(T), "--batch", str(batch), "--hidden", str(hidden), "--mode", mode,
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads",
        str(args.threads), "--lr", str(args.lr),
    ]  # fmt: skip


def sweep(results: Results, args, impls: list[str], configs: list[dict], section: str) -> None:
    """Run every (config, impl) ``args.repeats`` times, interleaving implementations."""
    for repeat in range(args.repeats):
        for config in configs:
            for name in impls:
                impl = IMPLS[name]
                if impl.name == "mlgenn" and (config["mode"] != "train" or section == "scaling"):
                    continue  # mlGeNN runs batch 1 training only (see README)
                label = {"section": section, "repeat": repeat}
                cli = common_cli(args, config["T"], config["batch"], config["hidden"],
                                 config["mode"])  # fmt: skip
                results.add(run_child(impl, cli, args, label))


# --- tables -----------------------------------------------------------------------------


def _median(values: list) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def aggregate(records: list[dict], section: str) -> dict[tuple, dict]:
    """Median over repeats per (impl, T, batch, hidden, mode)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("section") != section:
            continue
        key = (r["impl"], r.get("n_steps"), r.get("batch"), r.get("n_hidden"), r.get("mode"))
        groups.setdefault(key, []).append(r)
    rows = {}
    for key, group in groups.items():
        ok = [r for r in group if r.get("s_per_step") is not None]
        if not ok:
            rows[key] = {"status": group[-1].get("error") or group[-1].get("skipped")}
            continue
        rows[key] = {
            name: _median([r[name] for r in ok])
            for name in ("s_per_step", "cpu_s_per_step", "samples_per_s", "train_mem_mb",
                         "peak_rss_mb", "hidden_rate_hz", "hidden_rate_first_hz")
        }  # fmt: skip
        rows[key]["runs"] = len(ok)
        rows[key]["finite"] = all(r.get("finite", False) for r in ok)
    return rows


def _fmt(x: float, digits: int = 3) -> str:
    if x != x:  # nan
        return "–"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:.{max(digits - 1, 1)}f}"


def table(records: list[dict], section: str, mode: str) -> str:
    """Markdown table of one section; ratios are relative to spikeforge-event."""
    rows = aggregate(records, section)
    keys = sorted(
        (k for k in rows if k[4] == mode),
        key=lambda k: (k[1], k[2], k[3], list(IMPLS).index(k[0]) if k[0] in IMPLS else 99),
    )
    mem = "train mem" if mode == "train" else "step mem"
    head = (
        f"| impl | T | batch | hidden | s/step | CPU s/step | samples/s | {mem} (MB) "
        f"| peak RSS (MB) | hidden rate (Hz) | time / spikeforge | {mem} / spikeforge |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for key in keys:
        impl, T, batch, hidden, _ = key
        row = rows[key]
        if "status" in row:
            lines.append(f"| {impl} | {T} | {batch} | {hidden} | {row['status']} |||||||| ")
            continue
        base = rows.get((BASELINE, T, batch, hidden, mode), {})
        t_ratio = row["s_per_step"] / base["s_per_step"] if "s_per_step" in base else float("nan")
        m_ratio = (
            row["train_mem_mb"] / base["train_mem_mb"]
            if base.get("train_mem_mb", 0) > 0 else float("nan")
        )  # fmt: skip
        flag = "" if row["finite"] else " (non-finite!)"
        lines.append(
            f"| {impl}{flag} | {T} | {batch} | {hidden} | {_fmt(row['s_per_step'])} | "
            f"{_fmt(row['cpu_s_per_step'])} | {_fmt(row['samples_per_s'])} | "
            f"{_fmt(row['train_mem_mb'])} | {_fmt(row['peak_rss_mb'])} | "
            f"{_fmt(row['hidden_rate_hz'])} | {_fmt(t_ratio)}× | {_fmt(m_ratio)}× |"
        )
    return head + "\n".join(lines) + "\n"


def fastest_peer(records: list[dict], T: int) -> str:
    """The torch-based peer with the lowest median s/step at ``T`` (training)."""
    rows = aggregate(records, "train")
    timed = [
        (row["s_per_step"], impl) for (impl, t, _, _, mode), row in rows.items()
        if impl in TORCH_PEERS and t == T and mode == "train" and "s_per_step" in row
    ]  # fmt: skip
    return min(timed)[1] if timed else "torch-bptt"


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError as exc:
        raise SpikeforgeError(f"expected comma-separated integers, got {text!r}") from exc


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description="spikeforge vs peers: speed and memory benchmark")
    p.add_argument("--quick", action="store_true", help="T=100 only, 3 timed steps")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset")
    p.add_argument("--T", default=None, help="time steps, e.g. 100,500,1000")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 5; quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 2; quick 1)")
    p.add_argument("--repeats", type=int, default=1, help="runs per row; the median is shown")
    p.add_argument("--threads", type=int, default=2, help="torch/numba/OpenMP threads per run")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per subprocess")
    p.add_argument("--no-train", action="store_true", help="skip the training table")
    p.add_argument("--no-inference", action="store_true")
    p.add_argument("--no-scaling", action="store_true")
    p.add_argument("--scaling-T", type=int, default=500)
    p.add_argument("--scaling-hidden", default="128,256,512,1024")
    p.add_argument("--scaling-batch", default="8,32,128,256")
    p.add_argument("--scaling-peer", default=None, help="default: fastest torch peer")
    p.add_argument("--python", default=None, help="interpreter for spikeforge impls")
    p.add_argument("--peers-venv", default=str(HERE / ".venv-peers"))
    p.add_argument("--mlgenn-venv", default=str(HERE / ".venv-mlgenn"))
    p.add_argument("--out", default=str(HERE / "results" / "results.jsonl"))
    p.add_argument(
        "--from-results", nargs="+", default=None, metavar="JSONL",
        help="run nothing: merge these results files into --out and print the tables",
    )  # fmt: skip
    args = p.parse_args(argv)
    unknown = [name for name in args.impls.split(",") if name and name not in IMPLS]
    if unknown:
        raise SpikeforgeError(f"unknown implementation(s) {unknown}; choose from {list(IMPLS)}")
    if args.steps is None:
        args.steps = 3 if args.quick else 5
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.T is None:
        args.T = "100" if args.quick else "100,500,1000"
    if args.quick:
        args.no_scaling = True
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        Ts = _int_list(args.T)
        scaling_hidden = _int_list(args.scaling_hidden)
        scaling_batch = _int_list(args.scaling_batch)
    except SpikeforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    impls = [name for name in args.impls.split(",") if name]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "meta": True, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv[1:], "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(), "threads": args.threads, "git": git_revision(),
    }  # fmt: skip
    results = Results(out, meta)

    if args.from_results:
        return merge(results, args)
    train = [{"T": T, "batch": args.batch, "hidden": args.hidden, "mode": "train"} for T in Ts]
    if not args.no_train:
        print(f"training: T={Ts} batch={args.batch} hidden={args.hidden}", flush=True)
        sweep(results, args, impls, train, "train")
    if not args.no_inference:
        print("inference (no grad):", flush=True)
        infer = [{**c, "mode": "infer"} for c in train]
        sweep(results, args, [i for i in impls if i != "mlgenn"], infer, "infer")
    peer = None
    if not args.no_scaling:
        peer = args.scaling_peer or fastest_peer(results.records, max(Ts))
        print(f"scaling at T={args.scaling_T}: {BASELINE} vs {peer}", flush=True)
        configs = [
            {"T": args.scaling_T, "batch": args.batch, "hidden": h, "mode": "train"}
            for h in scaling_hidden
        ] + [
            {"T": args.scaling_T, "batch": b, "hidden": args.hidden, "mode": "train"}
            for b in scaling_batch if b != args.batch
        ]  # fmt: skip
        sweep(results, args, [BASELINE, peer], configs, "scaling")

    print("\n" + report(results, args, meta))
    print(f"results: {out} (JSON lines) and {out.with_suffix('.md')}")
    return 0


def report(results: Results, args, meta: dict) -> str:
    """Markdown tables of every section present; also written next to the results."""
    records = results.records
    sections = {r.get("section") for r in records}
    load_end = os.getloadavg()
    text = [
        f"# Benchmark results ({meta['started']}, {os.cpu_count()} CPUs, "
        f"{meta['threads']} threads per run, load average {meta['loadavg_start'][0]:.1f} at "
        f"start / {load_end[0]:.1f} at end)\n",
    ]  # fmt: skip
    if "train" in sections:
        text += ["## Training (forward + backward + Adam step)\n", table(records, "train", "train")]
    if "infer" in sections:
        text += ["\n## Inference (forward only, no grad)\n", table(records, "infer", "infer")]
    if "scaling" in sections:
        impls = sorted({r["impl"] for r in records if r.get("section") == "scaling"})
        T = sorted({r.get("n_steps") for r in records if r.get("section") == "scaling"})
        text += [f"\n## Scaling (T = {', '.join(map(str, T))}): {' vs '.join(impls)}\n",
                 table(records, "scaling", "train")]  # fmt: skip
    markdown = "\n".join(text)
    write_text_atomic(results.path.with_suffix(".md"), markdown)
    return markdown


def merge(results: Results, args) -> int:
    """Combine earlier results files (e.g. parts of one sweep, or repeats) into one."""
    for name in args.from_results:
        path = Path(name)
        if not path.is_file():
            print(f"error: results file {path} not found; pass existing .jsonl files",
                  file=sys.stderr)  # fmt: skip
            return 2
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("meta"):
                meta = results.records[0]
                if not meta.get("parts"):  # the first part's conditions head the report
                    for key in ("started", "threads", "loadavg_start", "git"):
                        meta[key] = record.get(key, meta[key])
                meta.setdefault("parts", []).append(record)
            else:
                results.records.append(record)
    results.add_all()
    print(report(results, args, results.records[0]))
    print(f"results: {results.path} (JSON lines) and {results.path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
