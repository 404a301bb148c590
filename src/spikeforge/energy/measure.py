"""Measured time and (where the machine exposes counters) energy of inference runs.

Counters: Intel/AMD RAPL package energy through ``/sys/class/powercap`` (CPU),
NVML total-energy counter through ``pynvml`` (NVIDIA GPUs, Volta or newer), AMD SMI
energy accumulator through ``amdsmi`` (AMD GPUs). Counters measure the whole package or
board, including idle power and other processes: the numbers are energy *attributed*
to the run over its wall-clock time, not the energy of the arithmetic alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


@dataclass
class Counter:
    """A cumulative energy counter: ``read()`` returns joules since some origin."""

    name: str
    read: Callable[[], float]
    wrap_j: float | None = None


def rapl_counter(root: Path = POWERCAP) -> Counter | None | str:
    """Sum of the top-level RAPL package domains, or a reason string if unavailable."""
    if not root.is_dir():
        return f"no {root} (RAPL not exposed: container, VM or non-x86 machine)"
    domains = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    domains += sorted(p for p in root.glob("amd-rapl:*") if p.name.count(":") == 1)
    if not domains:
        return f"{root} has no RAPL package domains"
    files = [d / "energy_uj" for d in domains]
    try:
        for f in files:
            int(f.read_text())
    except (OSError, ValueError) as exc:
        return f"RAPL energy_uj not readable ({exc.__class__.__name__}: needs root or perf access)"
    ranges = []
    for d in domains:
        try:
            ranges.append(int((d / "max_energy_range_uj").read_text()) * 1e-6)
        except (OSError, ValueError):
            ranges.append(None)

    def read() -> float:
        return sum(int(f.read_text()) for f in files) * 1e-6

    wrap = ranges[0] if len(set(ranges)) == 1 and ranges[0] else None
    return Counter("RAPL package (" + ", ".join(d.name for d in domains) + ")", read, wrap)


def nvml_counter(index: int = 0) -> Counter | None | str:
    """NVML total energy of GPU ``index``, or a reason string."""
    try:
        import pynvml
    except ImportError:
        return "pynvml not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as exc:  # NVMLError subclasses; no driver / no GPU / unsupported
        return f"NVML energy counter unavailable ({exc})"
    name = pynvml.nvmlDeviceGetName(handle)
    name = name.decode() if isinstance(name, bytes) else name
    return Counter(f"NVML {name}",
                   lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) * 1e-3)


def amdsmi_counter(index: int = 0) -> Counter | None | str:
    """AMD SMI energy accumulator of GPU ``index``, or a reason string (untested here)."""
    try:
        import amdsmi
    except ImportError:
        return "amdsmi not installed (ROCm)"
    try:
        amdsmi.amdsmi_init()
        handle = amdsmi.amdsmi_get_processor_handles()[index]

        def read() -> float:
            info = amdsmi.amdsmi_get_energy_count(handle)
            counter = info.get("energy_accumulator", info.get("power"))
            return float(counter) * float(info["counter_resolution"]) * 1e-6

        read()
    except Exception as exc:
        return f"AMD SMI energy counter unavailable ({exc})"
    return Counter("AMD SMI", read)


@dataclass
class Measurement:
    """Median wall-clock seconds per call and, if a counter was given, joules per call."""

    seconds: float
    joules: float | None
    repeats: int


def measure(fn: Callable[[], None], repeats: int, counter: Counter | None = None,
            sync: Callable[[], None] | None = None, min_seconds: float = 0.5) -> Measurement:
    """Time ``fn`` (after one warm-up call) ``repeats`` times; with a counter, also run it
    back to back for at least ``min_seconds`` to read the energy per call."""
    sync = sync or (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    joules = None
    if counter is not None:
        calls, start_e, t0 = 0, counter.read(), time.perf_counter()
        while calls < repeats or time.perf_counter() - t0 < min_seconds:
            fn()
            calls += 1
        sync()
        used = counter.read() - start_e
        if used < 0 and counter.wrap_j:
            used += counter.wrap_j
        joules = used / calls if used >= 0 else None
    return Measurement(statistics.median(times), joules, len(times))
