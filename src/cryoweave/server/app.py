"""The FastAPI application: the API under ``/api``, the web interface at ``/``, errors as one line of JSON.

>>> app = create_app(Instance("/tmp/cw-home"))                         # doctest: +SKIP
>>> uvicorn.run(app, port=39000)                                       # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cryoweave import __version__
from cryoweave.api import Instance
from cryoweave.errors import (
    CryoweaveError,
    NotFoundError,
    StatusError,
)
from cryoweave.server.deps import ServerState
from cryoweave.server.routes import data, jobs, outputs, projects, session

STATIC = Path(__file__).parent / "static"
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
               "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
"""The page runs only its own scripts: a job's text or a project's title can never run as code."""


def _status_of(err: CryoweaveError) -> int:
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, StatusError):
        return 409
    return 400


def create_app(instance: Instance, *, projects_dir: str | os.PathLike | None = None,
               secure_cookies: bool = False) -> FastAPI:
    """The web application of an instance; new projects go into ``projects_dir`` (default ``$HOME/projects``)."""
    app = FastAPI(title="cryoweave", version=__version__,
                  description="The HTTP API of a cryoweave instance: projects, jobs, the job builder, outputs.")
    folder = Path(projects_dir) if projects_dir else instance.settings.home / "projects"
    app.state.cryoweave = ServerState(instance=instance, projects_dir=folder.expanduser().absolute(),
                                      secure_cookies=secure_cookies)

    @app.exception_handler(CryoweaveError)
    def _user_error(_request: Request, err: CryoweaveError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=_status_of(err))

    @app.exception_handler(RequestValidationError)
    def _bad_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse({"detail": f"{where or 'request'}: {first.get('msg')}"}, status_code=400)

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    for module in (session, projects, jobs, outputs, data):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def _index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache",
                                                            "Content-Security-Policy": PAGE_POLICY})

    return app
