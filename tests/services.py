"""Real services for integration tests: a throw-away PostgreSQL server and a single-node
SLURM cluster (slurmctld + slurmd + munge), started from Debian's packages.

Each fixture skips the test with the reason when the service cannot start here (package
missing, not root, daemon refused) -- except in CI (``CI=true``), where ``.ci/run`` installs
the services and a service that did not start fails the test. Import the fixtures into a
test module to use them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def in_ci() -> bool:
    """True under CI (``CI=true``), where every service test must really run."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``; in CI, fail it instead (the service must start)."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def need_module(name: str, reason: str):
    """Import ``name`` or :func:`unavailable`."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text().strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- PostgreSQL -----------------------------------------------------------------------
def start_postgres() -> tuple[str, callable]:
    """initdb + pg_ctl start as the ``postgres`` user on a free port; returns (URL, stop).

    Raises ``RuntimeError`` with the reason if it cannot start.
    """
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdbs:
        raise RuntimeError("PostgreSQL is not installed (apt-get install -y postgresql)")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        raise RuntimeError("starting PostgreSQL needs root (to run it as the postgres user)")
    bindir = Path(initdbs[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="spikeforge-pg-"))
    shutil.chown(base, "postgres")
    data, log, port = base / "data", base / "server.log", _free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    proc = _run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                 "postgres"])
    if proc.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {proc.stderr.strip().splitlines()[-1:]}")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    proc = _run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                 str(log), "-w", "-t", "60", "start"])
    if proc.returncode != 0:
        reason = _tail(log)
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {reason}")

    def stop() -> None:
        _run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"])
        shutil.rmtree(base, ignore_errors=True)

    proc = _run([*as_pg, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                 "spikeforge"])
    if proc.returncode != 0:
        stop()
        raise RuntimeError(f"createdb failed: {proc.stderr.strip()}")
    return f"postgresql://postgres@127.0.0.1:{port}/spikeforge", stop


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server started for this test session."""
    need_module("psycopg2", "PostgreSQL storage needs psycopg2-binary "
                            "(pip install spikeforge[sweep])")
    try:
        url, stop = start_postgres()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"cannot start a PostgreSQL server here: {exc}")
    yield url
    stop()


@pytest.fixture
def postgres_url(postgres_server):
    """URL of a fresh, empty database on the session's server (one per test, so sweeps
    with the same study name never meet)."""
    import uuid

    import psycopg2

    name = f"sf_{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(postgres_server)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    return postgres_server.rsplit("/", 1)[0] + f"/{name}"


# -- SLURM ----------------------------------------------------------------------------
SLURM_CONF = """\
ClusterName=spikeforge-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
StateSaveLocation={base}/ctld
SlurmdSpoolDir={base}/d
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.7)
    return 2048


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def start_slurm() -> tuple[dict, callable]:
    """munged + slurmctld + slurmd on this machine with a private config; returns
    (info {partition, conf}, stop). Sets ``SLURM_CONF`` for child processes."""
    for tool in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise RuntimeError(f"{tool} not found (apt-get install -y slurm-wlm munge)")
    if os.geteuid() != 0:
        raise RuntimeError("starting slurmctld/slurmd needs root")
    started: list[Path] = []
    munge_socket = Path("/run/munge/munge.socket.2")
    if not munge_socket.exists():
        if not Path("/etc/munge/munge.key").exists():
            raise RuntimeError("no /etc/munge/munge.key (reinstall munge)")
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        proc = _run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"])
        if proc.returncode != 0:
            raise RuntimeError(f"munged did not start: {proc.stderr.strip()}")
        started.append(Path("/run/munge/munged.pid"))
    base = Path(tempfile.mkdtemp(prefix="spikeforge-slurm-"))
    for sub in ("ctld", "d"):
        (base / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    info = {"partition": "sftest", "conf": str(base / "slurm.conf")}
    (base / "slurm.conf").write_text(SLURM_CONF.format(
        host=host, base=base, cpus=os.cpu_count() or 1, mem_mb=_mem_mb(),
        partition=info["partition"], ctld_port=_free_port(), d_port=_free_port()))
    env = {**os.environ, "SLURM_CONF": info["conf"]}

    def stop() -> None:
        _run(["scancel", "--partition", info["partition"]], env=env)
        for pidfile in (base / "slurmd.pid", base / "slurmctld.pid", *started):
            pid = _pid(pidfile)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 15)
        time.sleep(1)
        shutil.rmtree(base, ignore_errors=True)

    for daemon, log in (("slurmctld", "slurmctld.log"), ("slurmd", "slurmd.log")):
        proc = _run([f"/usr/sbin/{daemon}", "-f", info["conf"]], env=env)
        if proc.returncode != 0:
            stop()
            why = proc.stderr.strip() or _tail(base / log)
            raise RuntimeError(f"{daemon} did not start: {why}")
    deadline = time.time() + 40
    while time.time() < deadline:
        state = _run(["sinfo", "-h", "-o", "%T"], env=env).stdout.strip()
        if state in ("idle", "mixed", "allocated"):
            os.environ["SLURM_CONF"] = info["conf"]
            return info, stop
        time.sleep(1)
    reason = f"node state {state!r}; slurmd log: {_tail(base / 'slurmd.log')}"
    stop()
    raise RuntimeError(reason)


@pytest.fixture(scope="session")
def slurm_cluster():
    need_module("dask_jobqueue", "the SLURM executor needs dask-jobqueue "
                                 "(pip install spikeforge[test])")
    try:
        info, stop = start_slurm()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"cannot start a single-node SLURM cluster here: {exc}")
    yield info
    stop()
    os.environ.pop("SLURM_CONF", None)


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Where screenshots go: ``$SPIKEFORGE_ARTIFACTS`` if set, else the test's tmp dir."""
    folder = Path(os.environ.get("SPIKEFORGE_ARTIFACTS", tmp_path / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
