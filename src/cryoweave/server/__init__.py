"""The web face: the HTTP API, the web interface and the scheduler in one process (``cryoweave serve``)."""

from cryoweave.server.app import create_app

__all__ = ["create_app"]
