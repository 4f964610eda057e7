"""One process for a whole instance: the web application and the scheduler (``cryoweave serve``).

>>> with running(Instance(home), port=0) as url:                      # doctest: +SKIP
...     requests.get(url + "/api/me")
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from cryoweave.api import Instance
from cryoweave.errors import ParamError
from cryoweave.server.app import create_app


class ServerThread:
    """The web application served by uvicorn in a thread, and the scheduler in another."""

    def __init__(self, instance: Instance, *, host: str = "127.0.0.1", port: int = 39000,
                 projects_dir: str | os.PathLike | None = None, secure_cookies: bool = False,
                 schedule: bool = True, proxy_headers: bool = False, root_path: str = ""):
        self.instance = instance
        app = create_app(instance, projects_dir=projects_dir, secure_cookies=secure_cookies)
        if port == 0:
            port = free_port(host)
        self.host, self.port = host, port
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", proxy_headers=proxy_headers,
                                forwarded_allow_ips="127.0.0.1" if proxy_headers else None, root_path=root_path)
        self.server = uvicorn.Server(config)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.server.run, name="cryoweave-http", daemon=True)]
        if schedule:
            self._threads.append(threading.Thread(target=self._schedule, name="cryoweave-scheduler", daemon=True))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _schedule(self) -> None:
        self.instance.scheduler().run(until=self._stop.is_set, interval=0.2)

    def start(self, timeout: float = 20.0) -> ServerThread:
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._threads[0].is_alive() or time.monotonic() > deadline:
                raise ParamError(f"the web server could not start on {self.host}:{self.port} "
                                 "(is the port in use? choose another with --port)")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=15)

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C), then stop both."""
        try:
            while self._threads[0].is_alive():
                self._threads[0].join(timeout=0.5)
        finally:
            self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(instance: Instance, **kwargs) -> Iterator[str]:
    """Serve ``instance`` for the duration of a ``with`` block; yields the base URL."""
    server = ServerThread(instance, **kwargs).start()
    try:
        yield server.url
    finally:
        server.stop()
