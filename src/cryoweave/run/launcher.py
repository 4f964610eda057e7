"""The launcher process of local lanes: reads one request per line, forks a worker, answers its pid.

It is started by the scheduler (``python -m cryoweave.run.launcher``) with the instance's
settings in its environment, imports what workers need, and never opens the database itself,
so each fork starts clean. Children are reaped by the kernel (SIGCHLD ignored): a worker's end
is seen by the scheduler through the job's status, the process table and heartbeats.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback


def _child(request: dict) -> int:
    os.setsid()
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115  (the process's own stdout from now on)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.environ["CUDA_VISIBLE_DEVICES"] = request["cuda"]
    from cryoweave.run.worker import main

    return main(["--project", request["project"], "--job", request["job"], "--token", request["token"]])


def serve() -> None:
    # Answers go out on a copy of stdout; whatever else is printed (a plugin talking at import) goes
    # to stderr, so it can never be taken for an answer.
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from cryoweave.jobs import default_registry
    from cryoweave.run import worker  # noqa: F401  (imported once here, for every fork)

    default_registry().types()  # load the installed job types once
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the scheduler's terminal is for the scheduler
    for line in sys.stdin:
        try:
            request = json.loads(line)
            sys.stdout.flush()
            replies.flush()
            pid = os.fork()
        except Exception as err:
            print(json.dumps({"error": f"{type(err).__name__}: {err}"}), file=replies, flush=True)
            continue
        if pid == 0:
            replies.close()
            code = 1
            try:
                code = _child(request)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        print(json.dumps({"pid": pid}), file=replies, flush=True)


if __name__ == "__main__":
    serve()
