"""A running job's heartbeat: a thread that reports every ``CRYOWEAVE_HEARTBEAT_S`` that the
worker is alive, and stops the worker when the job is no longer its run (killed, cleared, or
failed by the scheduler because beats stopped coming).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from cryoweave.errors import CryoweaveError
from cryoweave.store import Store
from cryoweave.store import queue as tables

STOP_GRACE_S = 10.0


class Heartbeat(threading.Thread):
    """Beats the job's heartbeat; stops the worker when the job is no longer this run's."""

    def __init__(self, store: Store, project: str, job: str, token: str):
        super().__init__(name=f"heartbeat {project} {job}", daemon=True)
        self.store, self.project, self.job, self.token = store, project, job, token
        self.done = threading.Event()

    def beat(self) -> bool:
        try:
            return tables.heartbeat(self.store, self.project, self.job, self.token)
        except CryoweaveError as err:  # the database is unreachable for a moment: try again at the next beat
            print(f"cryoweave worker: heartbeat failed: {err}", file=sys.stderr, flush=True)
            return True

    def run(self) -> None:
        while not self.done.wait(self.store.settings.heartbeat_s):
            if not self.beat():
                print(f"cryoweave worker: {self.project} {self.job} is no longer this worker's run "
                      "(killed, cleared or failed); stopping", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
                if not self.done.wait(STOP_GRACE_S):
                    os._exit(143)
                return

    def stop(self) -> None:
        self.done.set()
