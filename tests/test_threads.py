"""Thread budget from affinity, cgroup quota and load (fake /proc and /sys/fs/cgroup)."""

import math
import os
import warnings

import numba
import pytest
import torch

from spikeforge import threads as th

TCK = os.sysconf("SC_CLK_TCK")


def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _self_stat(cpu_s: float, start_s: float) -> str:
    """A /proc/self/stat line with utime + stime = cpu_s and starttime = start_s."""
    fields = ["S"] + ["0"] * 40
    fields[11], fields[12] = str(round(cpu_s * TCK)), "0"
    fields[19] = str(round(start_s * TCK))
    return "123 (py thon) " + " ".join(fields)


def _proc_stat(busy: list[int], idle: list[int]) -> str:
    """/proc/stat with per-CPU (user, idle) ticks."""
    lines = [f"cpu {sum(busy)} 0 0 {sum(idle)} 0 0 0 0 0 0"]
    lines += [f"cpu{i} {b} 0 0 {d} 0 0 0 0 0 0" for i, (b, d) in enumerate(zip(busy, idle,
                                                                            strict=True))]
    return "\n".join(lines + ["intr 0", "ctxt 0"]) + "\n"


@pytest.fixture
def proc(tmp_path):
    root = tmp_path / "proc"
    _write(root / "self" / "cgroup", "0::/\n")
    _write(root / "self" / "stat", _self_stat(0.0, 100.0))
    _write(root / "uptime", "160.0 0.0\n")
    return root


def test_cgroup_v2_takes_the_tightest_limit_up_the_tree(tmp_path, proc):
    cg = tmp_path / "cgroup"
    _write(proc / "self" / "cgroup", "0::/job/step\n")
    _write(cg / "job" / "step" / "cpu.max", "max 100000\n")
    _write(cg / "job" / "cpu.max", "150000 100000\n")
    _write(cg / "cpu.max", "400000 100000\n")
    assert th.cgroup_cpu_quota(proc, cg) == 1.5
    assert th.CpuBudget(affinity=4, quota=1.5, busy_others=0.0).cores == 1


def test_cgroup_v2_namespace_root_and_no_limit(tmp_path, proc):
    cg = tmp_path / "cgroup"
    _write(proc / "self" / "cgroup", "0::/not/visible/here\n")
    _write(cg / "cpu.max", "200000 100000\n")
    assert th.cgroup_cpu_quota(proc, cg) == 2.0
    _write(cg / "cpu.max", "max 100000\n")
    assert th.cgroup_cpu_quota(proc, cg) is None


def test_cgroup_v1_quota(tmp_path, proc):
    cg = tmp_path / "cgroup"
    _write(proc / "self" / "cgroup", "12:memory:/docker/abc\n5:cpu,cpuacct:/docker/abc\n")
    leaf = cg / "cpu,cpuacct" / "docker" / "abc"
    _write(leaf / "cpu.cfs_quota_us", "300000\n")
    _write(leaf / "cpu.cfs_period_us", "100000\n")
    assert th.cgroup_cpu_quota(proc, cg) == 3.0
    _write(leaf / "cpu.cfs_quota_us", "-1\n")
    assert th.cgroup_cpu_quota(proc, cg) is None


def test_no_cgroup_information(tmp_path):
    assert th.cgroup_cpu_quota(tmp_path / "none", tmp_path / "none") is None


def test_loadavg_minus_own_process(proc):
    _write(proc / "self" / "stat", _self_stat(60.0, 100.0))  # 60 s old, one busy core
    own = 1.0 - math.exp(-1.0)
    busy = th.busy_from_loadavg(proc, loadavg=lambda: (1.9, 0.0, 0.0))
    assert busy == pytest.approx(1.9 - own, abs=0.02)
    assert th.busy_from_loadavg(proc, loadavg=lambda: (0.2, 0.0, 0.0)) == 0.0


def test_sample_counts_other_processes_on_our_cpus_only(proc):
    stat = proc / "stat"
    _write(stat, _proc_stat([1000, 1000, 1000], [1000, 1000, 1000]))

    def sleep(_seconds):  # 100 ticks pass per CPU: cpu0 fully busy (we used 20 of them),
        _write(stat, _proc_stat([1100, 1050, 1100], [1000, 1050, 1000]))  # cpu1 half
        _write(proc / "self" / "stat", _self_stat(20 / TCK, 100.0))

    busy = th.busy_from_sample({0, 1}, proc, 0.1, sleep=sleep)
    assert busy == pytest.approx((100 - 20 + 50) / 100)


def test_choose_threads():
    idle, hog, full = (th.CpuBudget(2, None, b) for b in (0.1, 1.0, 2.1))
    assert th.choose_threads(0, idle) == (2, False)
    assert th.choose_threads(0, hog) == (1, False)  # one core busy: one thread
    assert th.choose_threads(0, full) == (1, True)
    assert th.choose_threads(2, hog) == (2, True)  # as asked, but oversubscribed
    assert th.choose_threads(8, idle) == (2, False)  # never above the cores
    assert th.choose_threads(0, th.CpuBudget(16, 4.0, 0.0)) == (4, False)
    with pytest.raises(ValueError, match=">= 0"):
        th.choose_threads(-1, idle)


def test_budget_uses_affinity(monkeypatch, proc):
    _write(proc / "stat", _proc_stat([0] * 4, [0] * 4))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 3})
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))  # other CPUs' load
    budget = th.cpu_budget(proc, proc / "no-cgroup", sample_s=0.0)
    assert (budget.affinity, budget.quota, budget.cores) == (2, None, 2)
    assert budget.busy_others == 0.0  # the load average is not about our two CPUs


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads(), numba.get_num_threads()
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


def test_set_threads_never_above_numba_pool(restore_threads):
    assert th.set_threads(64) == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert th.set_threads(1) == 1
    assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1


def test_configure_threads_applies_and_warns_once(monkeypatch, restore_threads):
    monkeypatch.setattr(th, "_warned", False)
    saturated = th.CpuBudget(2, None, 2.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert th.configure_threads(0, saturated) == 1
        assert th.configure_threads(2, saturated) == 2
        assert th.configure_threads(0, th.CpuBudget(2, None, 0.0)) == 2
    assert len(caught) == 1 and caught[0].category is UserWarning
    assert "2.0 of the 2 available CPU cores busy" in str(caught[0].message)
    assert torch.get_num_threads() == 2 and numba.get_num_threads() == min(
        2, numba.config.NUMBA_NUM_THREADS)


def test_budget_prefers_the_sample_to_the_lagging_load_average(monkeypatch, proc):
    _write(proc / "stat", _proc_stat([0, 0], [0, 0]))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 3.0, 2.0))  # a burst that ended
    monkeypatch.setattr(th, "busy_from_sample", lambda cpus, proc, seconds: 0.2)
    assert th.cpu_budget(proc, proc / "no-cgroup").busy_others == 0.2
    monkeypatch.setattr(th, "busy_from_sample", lambda cpus, proc, seconds: None)
    assert th.cpu_budget(proc, proc / "no-cgroup").busy_others == 3.5  # no /proc/stat
