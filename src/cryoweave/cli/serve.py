"""``cryoweave serve``: the HTTP API, the web interface and the scheduler in one process."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from cryoweave.cli.instance import open_instance
from cryoweave.cli.output import say


def serve(
    host: Annotated[str, typer.Option(help="The address to listen on (127.0.0.1: this machine only; put a "
                                      "reverse proxy in front for others).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port.")] = 39000,
    projects_dir: Annotated[Path | None, typer.Option("--projects-dir", help="Where projects made in the web "
                                                      "interface go (default: $CRYOWEAVE_HOME/projects).")] = None,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Send the session cookie over HTTPS "
                                                 "only (set this behind a TLS reverse proxy).")] = False,
    proxy_headers: Annotated[bool, typer.Option("--proxy-headers", help="Trust X-Forwarded-Proto/For from a "
                                                "reverse proxy on 127.0.0.1.")] = False,
    root_path: Annotated[str, typer.Option("--root-path", help="The URL prefix a reverse proxy serves "
                                           "cryoweave under, e.g. /cryoweave.")] = "",
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="Serve only; another process "
                                               "(cryoweave scheduler) starts the jobs.")] = False,
) -> None:
    """Serve the web interface and the HTTP API (OpenAPI at /docs), and schedule queued jobs.

    Example: cryoweave user add admin --admin && cryoweave serve --port 39000
    """
    from cryoweave.server.serve import ServerThread
    from cryoweave.store import accounts

    with open_instance() as inst:
        if not accounts.list_users(inst.store):
            say("no accounts yet: create one with 'cryoweave user add NAME --admin' to log in")
        server = ServerThread(inst, host=host, port=port, projects_dir=projects_dir, secure_cookies=secure_cookies,
                              schedule=not no_scheduler, proxy_headers=proxy_headers, root_path=root_path).start()
        behind = f", for a reverse proxy that serves it under {root_path}/" if root_path else ""
        say(f"cryoweave serves {server.url}/ (API schema at /docs){behind}; Ctrl-C stops")
        signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop ends it as Ctrl-C does
        try:
            server.wait()
        except KeyboardInterrupt:
            say("stopped: jobs still running go on; the next scheduler watches them")


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt
