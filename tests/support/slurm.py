"""A throwaway one-node SLURM cluster for the tests, started from the installed daemons.

Each :class:`SlurmCluster` owns a fresh temporary directory holding its ``slurm.conf``, state,
spool, pid and log files. ``slurmctld`` and ``slurmd`` run in the foreground (``-D``) as child
processes of the test session, listen on free TCP ports (so they never clash with a system
SLURM) and trust every local request (``auth/none``, no munge). The only node is this machine,
under its short host name and reached at 127.0.0.1, in one partition, ``debug``. ``stop()``
cancels the jobs still running, stops both daemons and removes everything.

Commands such as ``sbatch`` find the cluster through ``SLURM_CONF``: pass :attr:`SlurmCluster.env`
to subprocesses, or set ``os.environ["SLURM_CONF"]`` (the ``slurm_cluster`` fixture does).
Finished jobs stay known to the controller for ``MinJobAge`` (10 min); note that ``squeue``
lists them only with ``--states=all`` (by default it shows pending, running and completing jobs).

The daemons need root to start jobs. ``scripts/test-services.sh`` installs them (Debian package
``slurm-wlm``).

Example
-------
>>> with SlurmCluster() as cluster:  # doctest: +SKIP
...     out = subprocess.run(["sbatch", "--parsable", "job.sh"], env=cluster.env, capture_output=True, text=True)
...     job_id = out.stdout.strip()
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

#: Where Debian puts the daemons; often not on a non-root user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

#: Environment variables that steer the SLURM commands (input variables of sbatch, squeue...,
#: and those set inside a SLURM job); the developer's must not reach the test cluster.
STEERING_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCANCEL_", "SCONTROL_")

PARTITION = "debug"
CLUSTER_NAME = "cryoweave-test"
MAX_REAL_MEMORY_MB = 4000

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 30
LOG_TAIL_LINES = 20


class SlurmError(RuntimeError):
    """SLURM is missing, or the test cluster could not be started or used."""


def find_slurm_program(name: str) -> Path:
    """Return the path of SLURM program ``name`` (``slurmctld``, ``sbatch``...): PATH, then sbin dirs.

    Example
    -------
    >>> find_slurm_program("slurmctld")  # doctest: +SKIP
    PosixPath('/usr/sbin/slurmctld')
    """
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))
    if found is None:
        raise SlurmError(
            f"SLURM program {name!r} not found on PATH or in {', '.join(SBIN_DIRS)}; "
            "run `bash scripts/test-services.sh` (installs slurm-wlm as root) or install SLURM"
        )
    return Path(found)


def clean_environ() -> dict[str, str]:
    """A copy of ``os.environ`` without the variables that steer the SLURM commands."""
    return {k: v for k, v in os.environ.items() if not k.startswith(STEERING_PREFIXES)}


def _free_ports(count: int) -> list[int]:
    # All sockets stay open until the end, so the ports differ. Another process may take a port
    # before the daemon binds it; start() retries then.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


class SlurmCluster:
    """One ``slurmctld`` and one ``slurmd`` in a temporary directory; a context manager.

    Every job gets one CPU and ``RealMemory / CPUs`` MiB unless it asks for more, so as many
    one-CPU jobs as the machine has cores run at the same time.

    Example
    -------
    >>> cluster = SlurmCluster().start()  # doctest: +SKIP
    >>> cluster.env["SLURM_CONF"]  # doctest: +SKIP
    '/tmp/cryoweave-slurm-x1y2z3/slurm.conf'
    >>> cluster.stop()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.root: Path | None = None
        self.hostname = socket.gethostname().split(".")[0]  # slurmd names its node so
        self.partition = PARTITION
        self.cpus = os.cpu_count() or 1
        self.real_memory_mb = min(MAX_REAL_MEMORY_MB, _memory_mb())
        self.ports: tuple[int, int] | None = None
        self._daemons: dict[str, subprocess.Popen[bytes]] = {}

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> SlurmCluster:
        """Write the configuration and start both daemons; wait until the node is idle."""
        if self.root is not None:
            raise SlurmError(f"cluster already started in {self.root}")
        slurmctld, slurmd = find_slurm_program("slurmctld"), find_slurm_program("slurmd")
        self.root = Path(tempfile.mkdtemp(prefix="cryoweave-slurm-"))
        atexit.register(self.stop)  # a crashed test session must not leave the daemons running
        try:
            for attempt in range(3):
                self._write_conf()
                self._spawn("slurmctld", slurmctld, "-D", "-f", self.conf)
                self._spawn("slurmd", slurmd, "-D", "-f", self.conf, "-N", self.hostname)
                try:
                    self._wait_until_idle()
                    break
                except SlurmError:
                    # A port taken between _free_ports() and the bind: try others.
                    if attempt == 2 or "already in use" not in self._log_tails():
                        raise
                    self._stop_daemons()
                    self._clear_logs()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel the remaining jobs, stop both daemons and remove the directory; safe to call twice."""
        if self.root is None:
            return
        atexit.unregister(self.stop)
        try:
            self._cancel_jobs()
            self._stop_daemons()
            self._kill_leftover_steps()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            self.ports = None

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- use --------------------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self._require_root() / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM commands: ``os.environ`` with ``SLURM_CONF`` set to this cluster's."""
        return {**clean_environ(), "SLURM_CONF": str(self.conf)}

    def log_file(self, daemon: str) -> Path:
        """The log file of ``slurmctld`` or ``slurmd``."""
        return self._require_root() / f"{daemon}.log"

    def run(self, program: str, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run SLURM command ``program`` (``sbatch``, ``squeue``...) against this cluster."""
        argv = [str(find_slurm_program(program)), *map(str, args)]
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        if check and result.returncode != 0:
            raise SlurmError(
                f"{' '.join(argv)} failed with exit status {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    # -- internals --------------------------------------------------------------------------

    def _require_root(self) -> Path:
        if self.root is None:
            raise SlurmError("cluster not started")
        return self.root

    def _write_conf(self) -> None:
        root = self._require_root()
        for sub in ("state", "spool"):
            (root / sub).mkdir(exist_ok=True)
        self.ports = ctld_port, slurmd_port = tuple(_free_ports(2))
        user = pwd.getpwuid(os.geteuid()).pw_name  # root, as the daemons must be to start jobs
        settings = {
            "ClusterName": CLUSTER_NAME,
            # Host name and address: no DNS needed, and the name matches what slurmd reports.
            "SlurmctldHost": f"{self.hostname}(127.0.0.1)",
            "SlurmctldPort": ctld_port,
            "SlurmdPort": slurmd_port,
            "AuthType": "auth/none",
            "CredType": "cred/none",
            "SlurmUser": user,
            "SlurmdUser": user,
            "StateSaveLocation": root / "state",
            "SlurmdSpoolDir": root / "spool",
            "SlurmctldPidFile": root / "slurmctld.pid",
            "SlurmdPidFile": root / "slurmd.pid",
            "SlurmctldLogFile": self.log_file("slurmctld"),
            "SlurmdLogFile": self.log_file("slurmd"),
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "MpiDefault": "none",
            "MailProg": shutil.which("true") or "/bin/true",  # no mail; the default may not exist
            "SchedulerType": "sched/backfill",
            "SchedulerParameters": "sched_interval=1,bf_interval=1",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",
            # Without a default, every job would take all the node's memory and run alone.
            "DefMemPerCPU": max(1, self.real_memory_mb // self.cpus),
            "ReturnToService": 2,
            "MinJobAge": 600,  # finished jobs stay known (squeue --states=all) for 10 min
            "MessageTimeout": 10,
            "KillWait": 5,
            "InactiveLimit": 0,
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        lines += [
            f"NodeName={self.hostname} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.real_memory_mb} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.hostname} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("# cryoweave test cluster\n" + "\n".join(lines) + "\n")

    def _spawn(self, name: str, program: Path, *args: object) -> None:
        root = self._require_root()
        with open(root / f"{name}.out", "ab") as out:
            # Own session: stop() signals the daemon and its helpers (slurmscriptd) together.
            self._daemons[name] = subprocess.Popen(
                [str(program), *map(str, args)],
                cwd=root, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def _wait_until_idle(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            for name, proc in self._daemons.items():
                if proc.poll() is not None:
                    raise SlurmError(f"{name} exited with status {proc.returncode}:\n{self._log_tails()}")
            result = self.run("sinfo", "-h", "-o", "%T", check=False)
            state = (result.stdout + result.stderr).strip()
            if result.returncode == 0 and state.split() == ["idle"]:
                return
            time.sleep(0.2)
        raise SlurmError(
            f"the SLURM test cluster did not become idle within {START_TIMEOUT_S} s "
            f"(sinfo says {state!r}):\n{self._log_tails()}"
        )

    def _cancel_jobs(self) -> None:
        ctld = self._daemons.get("slurmctld")
        if ctld is None or ctld.poll() is not None:
            return
        try:
            active = self.run("squeue", "-h", "-o", "%A", check=False).stdout.split()
            if not active:
                return
            self.run("scancel", *active, check=False)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline:
                if not self.run("squeue", "-h", "-o", "%A", check=False).stdout.split():
                    return
                time.sleep(0.2)
        except (OSError, subprocess.TimeoutExpired):
            pass  # the daemons go anyway; _kill_leftover_steps takes the jobs' processes

    def _stop_daemons(self) -> None:
        daemons, self._daemons = self._daemons, {}
        for proc in daemons.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in daemons.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT_S)
            # Also after a clean exit: helpers left in the daemon's process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _kill_leftover_steps(self) -> None:
        # slurmstepd (one per job step) is a daemon of its own, in a session of its own with the
        # job's processes; ours are those holding a file in our directory (the slurmd log).
        root = str(self._require_root())
        sessions = set()
        for proc_dir in Path("/proc").glob("[0-9]*"):
            try:
                if (proc_dir / "comm").read_text().strip() != "slurmstepd":
                    continue
                if any(os.readlink(fd).startswith(root + "/") for fd in (proc_dir / "fd").iterdir()):
                    sessions.add(os.getsid(int(proc_dir.name)))
            except OSError:
                continue
        if not sessions:
            return
        for proc_dir in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if os.getsid(int(proc_dir.name)) in sessions:
                    os.kill(int(proc_dir.name), signal.SIGKILL)

    def _log_paths(self) -> list[Path]:
        root = self._require_root()
        return [path for name in ("slurmctld", "slurmd") for path in (self.log_file(name), root / f"{name}.out")]

    def _clear_logs(self) -> None:
        for path in self._log_paths():
            path.unlink(missing_ok=True)

    def _log_tails(self) -> str:
        if self.root is None:
            return ""
        tails = []
        paths = self._log_paths()
        for log, out in zip(paths[::2], paths[1::2]):
            # The .out file (a copy of the log in foreground mode) holds what the daemon printed
            # before it could open its log file.
            for path in (log, out):
                try:
                    lines = path.read_text(errors="replace").splitlines()
                except OSError:
                    continue
                if lines:
                    tails.append(f"--- last lines of {path} ---\n" + "\n".join(lines[-LOG_TAIL_LINES:]))
                    break
        return "\n".join(tails)
