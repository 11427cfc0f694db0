"""A minimal HTTP/1.1 server on the event loop, for the worker's ``/metrics`` and health probes.

It answers one GET (or HEAD) per connection and closes it: enough for Prometheus scrapes and
container probes, and no dependency, so health checks work without any extra installed. It runs
on the worker's own loop, so its handlers read the worker's state (and the embedded backend)
directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("redisjobs.http")


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler answers: a status line (``200 OK``), a body and its content type."""

    status: str
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[str], Awaitable[Reply | None]]
"""Given a GET's path (without the query), the reply; None for 404."""

NOT_FOUND = Reply("404 Not Found", b"not found\n")


class TinyServer:
    """Serve `handler` over HTTP at `host`:`port` (0 = any free port; see :attr:`port`).

    Args:
        handler: the coroutine that answers a GET of a path.
        host: the address to listen on.
        port: the port.
        name: what the log calls it.
    """

    def __init__(self, handler: Handler, host: str, port: int, name: str = "http") -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.name = name
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; :attr:`port` is the bound port afterwards."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readuntil(b"\r\n\r\n")
                method, target, *_ = request.split(b"\r\n", 1)[0].split(b" ")
                path = target.split(b"?", 1)[0].decode("ascii", "replace")
                reply = await self.handler(path) if method in (b"GET", b"HEAD") else None
                reply = reply or NOT_FOUND
                body = b"" if method == b"HEAD" else reply.body
                writer.write(
                    f"HTTP/1.1 {reply.status}\r\nContent-Type: {reply.content_type}\r\n"
                    f"Content-Length: {len(reply.body)}\r\nCache-Control: no-store\r\n"
                    "Connection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            log.debug("%s request failed: %s", self.name, exc)
        except Exception:  # a request must never take the worker down (Redis away, say)
            log.warning("%s request failed", self.name, exc_info=True)
            with contextlib.suppress(OSError):
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
