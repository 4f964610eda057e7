"""The worker: runs one job of one run, beating its heartbeat, until it completes, fails or is killed.

``python -m cryoweave.run.worker --project P1 --job J7 --token T`` is what a lane starts: a
local lane forks it (see :mod:`cryoweave.run.launcher`), a cluster lane's job script runs it as
``{{ run_cmd }}``. It takes the job from ``launched`` to ``running``, calls the job type's
code, and records how it ended. A thread beats the job's heartbeat every
``CRYOWEAVE_HEARTBEAT_S``; when the job is no longer this run's (killed, cleared, or failed by
the scheduler because beats stopped coming) the worker stops itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time

from cryoweave.builder import lifecycle
from cryoweave.errors import CryoweaveError, StatusError
from cryoweave.jobs import Registry, default_registry
from cryoweave.model.status import JobStatus
from cryoweave.run.foreground import Terminated, execute
from cryoweave.run.heartbeat import Heartbeat
from cryoweave.settings import Settings
from cryoweave.store import Store


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated(f"signal {signum}")


def work(store: Store, registry: Registry, project: str, job: str, token: str) -> int:
    """Run the launched job as run ``token``; the exit status: 0 completed, 1 failed, 143 killed."""
    host, pid = socket.gethostname(), os.getpid()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        store.edit_job(project, job, lifecycle.begin(token, host, pid))
    except StatusError as err:
        print(f"cryoweave worker: {err}", file=sys.stderr, flush=True)
        return 1
    except CryoweaveError as err:  # its inputs are not there after all: the job fails with the reason
        print(f"cryoweave worker: {err}", file=sys.stderr, flush=True)
        with contextlib.suppress(CryoweaveError):
            store.edit_job(project, job, lifecycle.end_run(JobStatus.FAILED, f"could not start: {err}", token))
        return 1
    print(f"cryoweave worker: {project} {job} running on {host} (pid {pid})", flush=True)
    beat = Heartbeat(store, project, job, token)
    beat.beat()
    beat.start()
    started = time.monotonic()
    try:
        record = execute(store, registry, project, job, token)
    except (Terminated, KeyboardInterrupt):
        print(f"cryoweave worker: {project} {job} stopped by a signal", file=sys.stderr, flush=True)
        return 143
    finally:
        beat.stop()
    print(f"cryoweave worker: {project} {job} {record.status.value} after {time.monotonic() - started:.1f} s",
          flush=True)
    return 0 if record.status == JobStatus.COMPLETED else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryoweave.run.worker",
                                     description="Run one launched cryoweave job (lanes start this).")
    parser.add_argument("--project", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--token", required=True, help="the run this worker is for")
    parser.add_argument("--home", help="the instance's CRYOWEAVE_HOME")
    parser.add_argument("--database-url", help="the instance's database (default: CRYOWEAVE_DATABASE_URL)")
    args = parser.parse_args(argv)
    try:
        store = Store(Settings.from_env(home=args.home, database_url=args.database_url))
    except CryoweaveError as err:
        print(f"cryoweave worker: {err}", file=sys.stderr, flush=True)
        return 1
    try:
        return work(store, default_registry(), args.project, args.job, args.token)
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
