"""Accuracy-vs-latency table (CSV / text) and plots for the conversion route."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spikeforge.atomic import atomic_path, write_text_atomic  # noqa: E402

COLUMNS = ("method", "param", "steps", "accuracy", "spikes", "sops", "code")
"""``code``: per-population K of fs-fit rows (``K_0/K_1/...``), empty otherwise."""


def write_table(rows: list[dict[str, Any]], path: Path) -> None:
    """CSV with one row per (method, simulation length)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def format_table(rows: list[dict[str, Any]], ann_accuracy: float, ann_macs: int) -> str:
    """Fixed-width text table of the rows plus the ANN reference line."""
    lines = [f"{'method':6} {'param':>5} {'steps':>6} {'accuracy':>8} {'spikes':>10} "
             f"{'SOPs':>12}  code"]
    for r in rows:
        lines.append(f"{r['method']:6} {r['param']:5d} {r['steps']:6d} {r['accuracy']:8.4f} "
                     f"{r['spikes']:10.1f} {r['sops']:12.0f}  {r.get('code', '')}".rstrip())
    lines.append(f"{'ANN':6} {'':5} {'':6} {ann_accuracy:8.4f} {'':10} {ann_macs:12d} MACs")
    return "\n".join(lines)


def plot_latency(rows: list[dict[str, Any]], ann_accuracy: float, ann_macs: int,
                 path_steps: Path, path_sops: Path) -> None:
    """Accuracy against time steps and against synaptic operations (log x), one line per
    method, with the ANN's accuracy (and MACs) for reference."""
    methods = sorted({r["method"] for r in rows})
    for key, path, label in (("steps", path_steps, "time steps (latency)"),
                             ("sops", path_sops, "synaptic operations per inference")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in methods:
            sel = sorted((r for r in rows if r["method"] == method), key=lambda r: r[key])
            ax.plot([r[key] for r in sel], [r["accuracy"] for r in sel], marker="o", ms=3,
                    label=f"SNN ({method})")
        ax.axhline(ann_accuracy, color="k", ls="--", lw=1, label=f"ANN {ann_accuracy:.3f}")
        ax.axhline(ann_accuracy - 0.01, color="grey", ls=":", lw=1, label="ANN - 1 pt")
        if key == "sops":
            ax.axvline(ann_macs, color="r", ls="--", lw=1, label=f"ANN MACs {ann_macs}")
        ax.set(xscale="log", xlabel=label, ylabel="test accuracy",
               ylim=(max(0.0, min(r["accuracy"] for r in rows) - 0.05), 1.0))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
