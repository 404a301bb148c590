"""``spikeforge energy``: counts, modelled energy per platform, measured time/energy here."""

from __future__ import annotations

import json
import platform as host
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikeforge.atomic import atomic_path, write_text_atomic
from spikeforge.energy import measure as ms
from spikeforge.energy.counting import NetworkOps, count_network_ops
from spikeforge.energy.platforms import PLATFORMS, modelled_energy
from spikeforge.events import Events


def equivalent_ann(network) -> nn.Sequential:
    """ReLU MLP with the SNN's layer sizes (a recurrent layer adds a square layer)."""
    modules: list[nn.Module] = []
    for index, (layer, spec) in enumerate(zip(network.layers, network.spec.layers,
                                              strict=True)):
        modules.append(nn.Linear(layer.in_features, layer.out_features, bias=False))
        if spec.recurrent:
            modules.append(nn.Linear(layer.out_features, layer.out_features, bias=False))
        if index < len(network.layers) - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def _counter(kind: str) -> tuple[ms.Counter | None, str]:
    found = ms.rapl_counter() if kind == "cpu" else ms.nvml_counter()
    if kind == "gpu" and not isinstance(found, ms.Counter):
        amd = ms.amdsmi_counter()
        found = amd if isinstance(amd, ms.Counter) else f"{found}; {amd}"
    if isinstance(found, ms.Counter):
        return found, found.name
    return None, f"not available here: {found}"


@torch.no_grad()
def _measure_device(network, events: Events, device: str, repeats: int) -> dict[str, Any]:
    counter, counter_note = _counter("cpu" if device == "cpu" else "gpu")
    sync = torch.cuda.synchronize if device == "cuda" else None
    n_batch, n_steps = events.n_batch, events.n_steps
    ann = equivalent_ann(network).to(device)
    dense = torch.from_numpy(events.to_dense(np.float32)).to(device)
    x_inf, x_step = dense.sum(dim=1), dense.reshape(n_batch * n_steps, -1)
    rows: dict[str, Any] = {"device": device, "energy_counter": counter_note}

    def record(name: str, fn) -> None:
        try:
            m = ms.measure(fn, repeats, counter, sync)
        except Exception as exc:  # e.g. a backend without this device
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"}
            return
        rows[name] = {"seconds_per_inference": m.seconds / n_batch,
                      "joules_per_inference": None if m.joules is None else m.joules / n_batch,
                      "batch_size": n_batch}

    if device == "cpu":
        record("snn", lambda: network(events))
    else:
        rows["snn"] = {"error": "the SNN engine runs on CPU events here; GPU timing of the "
                       "SNN needs the CUDA engine"}
    record("ann_per_inference", lambda: ann(x_inf))
    record("ann_per_step", lambda: ann(x_step))
    return rows


def _threads(n: int) -> tuple[int, int]:
    """Set torch and numba CPU threads to ``n``; returns the previous settings."""
    import numba

    old = (torch.get_num_threads(), numba.get_num_threads())
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return old


def energy_report(network, events: Events, out_dir: Path, repeats: int = 5,
                  threads: int = 1) -> dict:
    """Count, model and measure inference of ``network`` on the batch ``events``; write
    ``energy.json`` and ``energy.png`` into ``out_dir``.

    Args:
        network: a :class:`~spikeforge.nn.SpikingNetwork` (its spec gives ``dt`` and the
            layer kinds).
        events: the input batch ``[B, T, n_inputs]`` (e.g. the first test samples).
        out_dir: folder for the report files (a run folder); its path is recorded.
        repeats: timing repetitions; threads: CPU threads for the SNN (numba engine) and
            the equivalent ANN (torch).
    """
    import numba

    ops: NetworkOps = count_network_ops(network, events)
    modelled = []
    for plat in PLATFORMS:
        modelled.append({"platform": plat.name, "source": plat.source, **modelled_energy(
            plat, ops.sops, ops.neuron_updates, ops.dt_ms, ops.macs_per_inference,
            ops.macs_per_step)})
    old = _threads(threads)
    try:
        measured = [_measure_device(network, events, "cpu", repeats)]
        if torch.cuda.is_available():
            measured.append(_measure_device(network, events, "cuda", repeats))
    finally:
        torch.set_num_threads(old[0])
        numba.set_num_threads(old[1])
    report = {
        "run_dir": str(out_dir), "host": host.processor() or host.machine(),
        "cpu_threads": threads,
        "counts": ops.to_dict(),
        "conventions": {
            "sop": "spike (or input event) x non-zero fan-out",
            "ann_per_inference": "one MAC per weight per inference (static input)",
            "ann_per_step": "one MAC per weight per time step (T passes)",
        },
        "modelled": modelled,
        "measured": measured,
    }
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "energy.json", json.dumps(report, indent=2) + "\n")
    plot_energy(report, out_dir / "energy.png")
    report["files"] = [str(out_dir / "energy.json"), str(out_dir / "energy.png")]
    return report


def _fmt(joules: float | None) -> str:
    if joules is None:
        return "-"
    for unit, scale in (("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if joules >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules:.3g} J"


def print_report(report: dict) -> None:
    c = report["counts"]
    print(f"per inference (mean over {c['n_samples']} test samples, {c['n_steps']} steps of "
          f"{c['dt_ms']} ms):")
    print(f"  input events {c['input_events']:.1f}   spikes {c['spikes']:.1f}   "
          f"SOPs {c['sops']:.0f}   neuron updates {c['neuron_updates']}")
    print(f"  equivalent ANN MACs: {c['macs_per_inference']} per inference, "
          f"{c['macs_per_step']} with one pass per time step")
    print("MODELLED energy per inference (operation counts x published figures):")
    print(f"  {'platform':18s} {'SNN':>10s} {'SNN SOPs only':>14s} {'ANN/inference':>14s} "
          f"{'ANN/step':>10s}")
    for row in report["modelled"]:
        print(f"  {row['platform']:18s} {_fmt(row['snn_j']):>10s} "
              f"{_fmt(row['snn_synaptic_only_j']):>14s} {_fmt(row['ann_per_inference_j']):>14s} "
              f"{_fmt(row['ann_per_step_j']):>10s}")
    print(f"MEASURED on this machine (wall clock, one batch of {c['n_samples']} samples, "
          f"{report['cpu_threads']} CPU thread(s)):")
    for dev in report["measured"]:
        print(f"  {dev['device']}: energy counter {dev['energy_counter']}")
        for key in ("snn", "ann_per_inference", "ann_per_step"):
            row = dev[key]
            if "error" in row:
                print(f"    {key:18s} {row['error']}")
                continue
            energy = _fmt(row["joules_per_inference"]) if row["joules_per_inference"] else \
                "not available here"
            print(f"    {key:18s} {row['seconds_per_inference'] * 1e6:10.2f} us/inference   "
                  f"energy {energy}")
    print("sources:")
    for row in report["modelled"]:
        print(f"  {row['platform']}: {row['source']}")
    for path in report.get("files", []):
        print(f"wrote {path}")


def plot_energy(report: dict, path: Path) -> None:
    """Bar plot: modelled energy per platform and measured time (and energy) per inference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, colors = [], [], []
    for row in report["modelled"]:
        for key, what, color in (("snn_j", "SNN", "tab:blue"),
                                 ("ann_per_inference_j", "ANN/inf", "tab:orange"),
                                 ("ann_per_step_j", "ANN/step", "tab:red")):
            if row[key] is not None:
                labels.append(f"modelled {row['platform']} {what}")
                values.append(row[key])
                colors.append(color)
    for dev in report["measured"]:
        for key in ("snn", "ann_per_inference", "ann_per_step"):
            joules = dev[key].get("joules_per_inference")
            if joules:
                labels.append(f"MEASURED {dev['device']} {key}")
                values.append(joules)
                colors.append("tab:green")
    timing = [(f"MEASURED {d['device']} {k}", d[k]["seconds_per_inference"])
              for d in report["measured"] for k in ("snn", "ann_per_inference", "ann_per_step")
              if "seconds_per_inference" in d[k]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.32 * max(len(labels), 6) + 1.5),
                                   gridspec_kw={"width_ratios": [2, 1]})
    ax1.barh(range(len(values)), values, color=colors)
    ax1.set_yticks(range(len(values)), labels, fontsize=7)
    ax1.set_xscale("log")
    ax1.invert_yaxis()
    ax1.set_xlabel("energy per inference (J)")
    ax1.set_title("energy (modelled unless marked MEASURED)", fontsize=9)
    missing = [f"{d['device']}: {d['energy_counter']}" for d in report["measured"]
               if d["energy_counter"].startswith("not available")]
    if missing:
        ax1.text(0.01, -0.12 - 0.02 * len(labels) / 10, "measured energy " + "; ".join(missing),
                 transform=ax1.transAxes, fontsize=6, va="top", wrap=True)
    ax2.barh(range(len(timing)), [t for _, t in timing], color="tab:green")
    ax2.set_yticks(range(len(timing)), [n for n, _ in timing], fontsize=7)
    ax2.set_xscale("log")
    ax2.invert_yaxis()
    ax2.set_xlabel("seconds per inference")
    ax2.set_title("MEASURED wall-clock time", fontsize=9)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
