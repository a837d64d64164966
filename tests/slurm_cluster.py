"""A real one-node SLURM cluster on localhost, for tests.

:func:`slurm_cluster` starts ``munged`` (its own key and socket),
``slurmctld`` and ``slurmd`` in the foreground as children of the test
process, with a ``slurm.conf`` generated in a temporary folder (state,
spool, logs, pid files all there; free ports; the node is this machine
with its CPUs and memory), waits until the node is idle, and yields a
:class:`SlurmCluster` whose ``env`` points the clients at it
(``SLURM_CONF``). Teardown cancels the cluster's jobs and stops the three
daemons it started, by their process ids.

Why real daemons and not a fake ``sbatch``: the launcher's promises
(requeue, resume, the scheduler's view of a job) are SLURM's behaviour.
Debian's ``slurm-wlm`` and ``munge`` packages are enough; the daemons run
as the current user (root in CI, where ``.ci/run`` installs them). Where a
binary is missing or the daemons do not come up, the caller skips with the
reason (:class:`ClusterUnavailable`).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
#: Unix socket paths are limited to 107 bytes.
_SOCKET_MAX = 100


class ClusterUnavailable(RuntimeError):
    """The cluster cannot run here; the message is the skip reason."""


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> str:
        """A SLURM client command against this cluster; its stdout."""
        done = subprocess.run(
            list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def job_state(self, job_id: str) -> str:
        out = self.run("squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%T")
        return out.strip()

    def logs(self) -> str:
        """The daemons' log tails (for a failure message)."""
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(parts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(int(line.split()[1]) / 1024 * 0.9)
    return 1024


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def write_conf(root: Path, socket_path: Path, user: str) -> Path:
    """slurm.conf for one node (``localhost``) and one partition (``debug``)."""
    conf = root / "slurm.conf"
    text = f"""\
ClusterName=tcmbench-test
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it starts again (default 120 s)
AuthInfo=socket={socket_path},cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs={_cpus()} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
    conf.write_text(text)
    return conf


def _start(
    cluster: SlurmCluster, name: str, cmd: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = open(cluster.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - the daemon's
    try:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        log.close()
    cluster.procs[name] = proc
    return proc


def _wait(what: str, ready: object, cluster: SlurmCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.procs.items():
            if proc.poll() is not None:
                raise ClusterUnavailable(
                    f"{name} exited with status {proc.returncode} while waiting for {what}\n"
                    + cluster.logs()
                )
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise ClusterUnavailable(f"no {what} within {timeout:.0f} s\n" + cluster.logs())


def _stop(cluster: SlurmCluster) -> None:
    """Cancel the cluster's jobs, then stop the daemons this module started."""
    if "slurmctld" in cluster.procs and cluster.procs["slurmctld"].poll() is None:
        with contextlib.suppress(Exception):
            cluster.run("scancel", "--partition=debug", "--full", check=False, timeout=10)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if not cluster.run("squeue", "--noheader", check=False, timeout=10).strip():
                    break
                time.sleep(0.5)
    for name in ("slurmd", "slurmctld", "munged"):  # the reverse of their start
        proc = cluster.procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def slurm_cluster(root: Path, timeout: float = 40) -> Iterator[SlurmCluster]:
    """Start the cluster in ``root``; raises :class:`ClusterUnavailable`
    (the skip reason) when it cannot run here."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        raise ClusterUnavailable(
            f"{', '.join(missing)} not found (Debian: apt-get install slurm-wlm munge)"
        )
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    munge_dir = root / "munge"
    if len(str(munge_dir / "munge.socket")) > _SOCKET_MAX:
        munge_dir = Path(tempfile.mkdtemp(prefix="tcm-munge-"))
    munge_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(munge_dir, 0o700)
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    socket_path = munge_dir / "munge.socket"
    user = getpass.getuser()
    conf = write_conf(root, socket_path, user)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env["SLURM_CONF"] = str(conf)
    cluster = SlurmCluster(root, conf, env)
    try:
        _start(
            cluster,
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--key-file={key}",
                f"--socket={socket_path}",
                f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            env,
        )
        _wait("munge socket", socket_path.exists, cluster, 10)
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)], env)

        def controller_up() -> bool:
            return cluster.run("scontrol", "ping", check=False, timeout=10).count("UP") > 0

        _wait("slurmctld", controller_up, cluster, timeout)
        _start(cluster, "slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env)

        def node_idle() -> bool:
            out = cluster.run(
                "sinfo", "--noheader", "--nodes=localhost", "--format=%T", check=False
            )
            return out.strip() == "idle"

        _wait("an idle node", node_idle, cluster, timeout)
        yield cluster
    finally:
        _stop(cluster)
        if munge_dir.parent != root:
            shutil.rmtree(munge_dir, ignore_errors=True)
