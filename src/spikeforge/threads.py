"""How many CPU threads to compute with: the cores this process may actually use.

The budget is the smallest of
- the CPUs in the process's affinity mask (``os.sched_getaffinity``: taskset, SLURM),
- the cgroup CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``: containers,
  SLURM with cgroup confinement), rounded down to whole cores,
- the cores left free by other processes: the busy time of the affinity CPUs over a
  short sample of ``/proc/stat`` minus this process's own. Where ``/proc/stat`` cannot
  be read, the 1-minute load average minus this process's share stands in (only when the
  process may use every CPU: the average is machine-wide); it is not used otherwise
  because it lags: minutes after a burst it still reads busy on an idle machine.

Compiled kernels run in parallel regions whose speed is that of their slowest thread, so
one thread more than the free cores (e.g. 2 threads while another process keeps one of
two cores busy) makes every region wait for a descheduled thread: several times slower
than using the free cores alone. :func:`configure_threads` applies the choice to torch
and Numba and warns once per process when the machine is oversubscribed.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
SAMPLE_S = 0.25  # length of the /proc/stat sample (s)

_warned = False


@dataclass(frozen=True)
class CpuBudget:
    """What this process may use.

    affinity: number of CPUs in the affinity mask.
    quota: cgroup CPU limit in cores (None: no limit).
    busy_others: cores kept busy by other processes (estimate, >= 0).
    """

    affinity: int
    quota: float | None
    busy_others: float

    @property
    def cores(self) -> int:
        """Cores available without regard to load: affinity and quota (at least 1)."""
        limit = self.affinity if self.quota is None else min(self.affinity, self.quota)
        return max(1, int(limit + 0.05))  # 1.98 cores from rounding in cpu.max is 2

    @property
    def free(self) -> float:
        """Cores not used by other processes (may be below 1 on a saturated machine)."""
        return self.cores - self.busy_others


def affinity_cpus() -> set[int]:
    """The CPU ids this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def cgroup_cpu_quota(proc: Path = PROC, root: Path = CGROUP_ROOT) -> float | None:
    """The tightest cgroup CPU limit (cores) on this process's cgroup and its parents, or
    None if there is none (or no cgroup information)."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2 unified hierarchy
            limits += [_v2_limit(d) for d in _candidates(root, path)]
        elif "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                if mount.is_dir():
                    limits += [_v1_limit(d) for d in _candidates(mount, path)]
                    break
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _candidates(mount: Path, path: str) -> list[Path]:
    """The cgroup directory of ``path`` under ``mount`` and its parents up to ``mount``
    (in a cgroup namespace the path may not exist there: then only ``mount``)."""
    leaf = mount / path.strip("/")
    if not leaf.is_dir():
        return [mount]
    dirs = [leaf]
    while dirs[-1] != mount and mount in dirs[-1].parents:
        dirs.append(dirs[-1].parent)
    return dirs


def _v2_limit(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def _own_cpu_s(proc: Path) -> tuple[float, float]:
    """(CPU seconds used by this process, its age in seconds) from ``/proc/self/stat``."""
    fields = (proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    uptime = float((proc / "uptime").read_text().split()[0])
    return cpu, max(uptime - int(fields[19]) / ticks, 1e-3)  # starttime


def busy_from_loadavg(proc: Path = PROC,
                      loadavg: Callable[[], tuple[float, float, float]] | None = None
                      ) -> float:
    """Cores busy with other processes by the 1-minute load average, minus this process's
    contribution to it (its mean parallelism, weighted as the average's 1-minute decay)."""
    try:
        cpu, age = _own_cpu_s(proc)
        own = cpu / age * (1.0 - math.exp(-age / 60.0))
    except (OSError, ValueError, IndexError):
        own = 0.0
    return max((loadavg or os.getloadavg)()[0] - own, 0.0)


def _cpu_ticks(proc: Path, cpus: set[int]) -> tuple[int, int]:
    """(busy, total) clock ticks of the CPUs ``cpus`` from ``/proc/stat``."""
    busy = total = 0
    for line in (proc / "stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def busy_from_sample(cpus: set[int], proc: Path = PROC, seconds: float = SAMPLE_S,
                     sleep: Callable[[float], None] = time.sleep) -> float | None:
    """Cores of ``cpus`` busy with other processes over a ``seconds`` sample of
    ``/proc/stat`` (busy ticks minus this process's own), or None without ``/proc``."""
    try:
        busy0, total0 = _cpu_ticks(proc, cpus)
        own0 = _own_cpu_s(proc)[0]
        sleep(seconds)
        busy1, total1 = _cpu_ticks(proc, cpus)
        own1 = _own_cpu_s(proc)[0]
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    ticks_per_cpu = (total1 - total0) / len(cpus)
    others = (busy1 - busy0) - (own1 - own0) * os.sysconf("SC_CLK_TCK")
    return max(others / ticks_per_cpu, 0.0)


def cpu_budget(proc: Path = PROC, root: Path = CGROUP_ROOT,
               sample_s: float = SAMPLE_S) -> CpuBudget:
    """Affinity, quota and other processes' load, measured now (takes ``sample_s``)."""
    cpus = affinity_cpus()
    busy = busy_from_sample(cpus, proc, sample_s)
    if busy is None:  # no /proc/stat: the load average, if it is about our CPUs
        busy = busy_from_loadavg(proc) if len(cpus) >= (os.cpu_count() or 1) else 0.0
    return CpuBudget(len(cpus), cgroup_cpu_quota(proc, root), busy)


def choose_threads(requested: int, budget: CpuBudget) -> tuple[int, bool]:
    """(threads, oversubscribed) for a request (0: automatic).

    Automatic: the free cores, rounded to the nearest whole core, at least 1. An
    explicit request is honoured up to the available cores, never more. Oversubscribed:
    the threads plus the other processes' load exceed the cores by half a core or more.
    """
    if requested < 0:
        raise ValueError(f"threads must be >= 0 (0: automatic), got {requested}")
    if requested:
        threads = min(requested, budget.cores)
    else:
        threads = min(max(1, math.floor(budget.free + 0.5)), budget.cores)
    return threads, threads + budget.busy_others >= budget.cores + 0.5


def set_threads(threads: int) -> int:
    """Make torch and Numba compute with ``threads`` threads; returns Numba's count
    (Numba's pool can only be narrowed below ``NUMBA_NUM_THREADS``, its size at start)."""
    import numba
    import torch

    torch.set_num_threads(threads)
    numba_threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(numba_threads)
    return numba_threads


def configure_threads(requested: int = 0, budget: CpuBudget | None = None) -> int:
    """Choose the thread count (``requested``; 0: automatic), apply it to torch and Numba
    and return it; warns once per process when the machine is oversubscribed."""
    global _warned
    budget = cpu_budget() if budget is None else budget
    threads, oversubscribed = choose_threads(requested, budget)
    if oversubscribed and not _warned:
        _warned = True
        warnings.warn(
            f"other processes keep {budget.busy_others:.1f} of the {budget.cores} available "
            f"CPU cores busy; computing with {threads} thread(s), so timings will be slower "
            f"and vary (set train.threads, or run on an idle machine)",
            UserWarning,
            stacklevel=2,
        )
    set_threads(threads)
    return threads
