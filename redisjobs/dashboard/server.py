"""Running the app under uvicorn inside an event loop that someone else owns."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from .sse import close_streams

SHUTDOWN_GRACE = 2
"""Seconds open requests get at shutdown; live streams never end on their own."""


class Server(uvicorn.Server):
    """uvicorn's server, leaving signals to its owner (who sets `should_exit` to stop it).

    At shutdown it first ends the live streams: they never end on their own, and uvicorn
    would otherwise wait for them, then cancel them with an error in the log.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing: the caller's loop already handles SIGTERM and SIGINT."""
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End the live streams, then shut down as uvicorn does."""
        close_streams()
        await super().shutdown(sockets)


def make_server(app: ASGIApp, host: str, port: int, *, log_level: str = "warning") -> Server:
    """A server of `app` on host:port; ``await server.serve()`` runs it until `should_exit`."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws="none",  # no websockets here, and none of their libraries' warnings
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
    return Server(config)


def stop(server: Server) -> None:
    """Stop `server` gracefully; a second call stops it at once."""
    if server.should_exit:
        server.force_exit = True
    server.should_exit = True
