"""A TCP fault proxy between workers and Redis, on a thread and event loop of its own.

Give each worker its own proxy (same upstream Redis) to fault one worker and not another::

    with FaultProxy(redis_port) as proxy:
        spawn_worker(url=proxy.url)
        proxy.set_latency(up=(0.05, 0.2), down=(0.05, 0.2))  # each way, per chunk
        proxy.blackhole()                                     # a half-open partition
        proxy.heal()                                          # held bytes flow again
        proxy.reset_all()                                     # RST every connection
        proxy.refuse()                                        # new connections get a RST

The control methods are thread-safe and return once the proxy's loop applied them, so a test
running on another loop (or blocking its thread) neither stalls the proxy nor races it.

What each fault looks like from the client's side:

* **latency**: every chunk read from one side is delivered to the other after a delay drawn
  from the direction's range, never before an earlier chunk of the same direction (bytes keep
  their order, as on one TCP connection).
* **blackhole**: bytes (and FINs, and resets) in both directions are held; the sockets stay open
  and the proxy's kernel keeps acknowledging what the client sends, so neither side's TCP notices
  anything (no ``TCP_USER_TIMEOUT``, keepalive probes answered): only an application deadline
  can tell. New connections are accepted and held the same way, as a SYN queued behind a
  partition would look to a client whose connect already returned.
* **heal**: by default the held bytes are *delivered*, in order, then traffic flows again. That
  is what TCP does when a partition ends before the peers give up: the network dropped the
  packets, and the senders retransmit them. A TCP connection never loses bytes in the middle of
  its stream and carries on, so "dropping" held bytes is modelled as ``heal(reset=True)``: every
  connection that lived through the partition is reset (the kernel gave up on it) and its held
  bytes are discarded; Redis never sees the requests, the client sees a reset.
* **reset_all**: every current connection is closed with ``SO_LINGER`` 0 on both sides, i.e. a
  TCP RST: the client's next read or write fails with ECONNRESET (or EOF) at once.
* **refuse**: new connections are accepted and reset at once (a client sees ECONNRESET on its
  first read); existing ones are left alone.

Counters (:meth:`stats`): connections accepted, refused and reset, active connections, bytes
each way; :meth:`connections` gives each connection's accept time, its first byte from the
server (a first successful reply) and its end, on :func:`time.monotonic`, to measure reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

Range = tuple[float, float]
_EOF = b""  # a queued FIN
_RST = None  # a queued reset


def _range(value: float | Range) -> Range:
    lo, hi = (value, value) if isinstance(value, int | float) else value
    if not 0 <= lo <= hi:
        raise ValueError(f"bad latency range {value!r}")
    return float(lo), float(hi)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a RST (SO_LINGER on, timeout 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class ConnectionInfo:
    """One proxied connection, times on :func:`time.monotonic`."""

    id: int
    accepted_at: float
    first_reply_at: float | None = None  # first server byte delivered to the client
    closed_at: float | None = None
    reset: bool = False  # ended by reset_all / heal(reset=True) / refuse


class _Pipe:
    """One client connection and its upstream connection, with a pump per direction."""

    def __init__(
        self,
        proxy: FaultProxy,
        info: ConnectionInfo,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.info = info
        self.client = client
        self.upstream = upstream
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        ends = ((self.client[0], self.upstream[1], True), (self.upstream[0], self.client[1], False))
        for src, dst, up in ends:
            queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
            self.tasks.append(loop.create_task(self._read(src, queue, up)))
            self.tasks.append(loop.create_task(self._write(dst, queue, up)))

    async def _read(
        self, src: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes | None]], up: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            try:
                data: bytes | None = await src.read(65536)
            except OSError:
                data = _RST
            lo, hi = self.proxy._up if up else self.proxy._down
            at = max(loop.time() + self.proxy._rng.uniform(lo, hi), last)
            last = at
            queue.put_nowait((at, data))
            if not data:
                return

    async def _write(
        self, dst: asyncio.StreamWriter, queue: asyncio.Queue[tuple[float, bytes | None]], up: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        flowing = self.proxy._flowing
        while True:
            at, data = await queue.get()
            while (delay := at - loop.time()) > 0 or not flowing.is_set():
                await asyncio.sleep(delay) if delay > 0 else await flowing.wait()
            if data is _RST:
                self.abort(reset=False)
                return
            if data == _EOF:
                with contextlib.suppress(OSError):
                    if dst.can_write_eof():
                        dst.write_eof()
                self._maybe_close()
                return
            try:
                dst.write(data)
                await dst.drain()
            except OSError:
                self.abort(reset=False)
                return
            if self.info.first_reply_at is None and not up:
                self.info.first_reply_at = time.monotonic()
            self.proxy._bytes["up" if up else "down"] += len(data)

    def _maybe_close(self) -> None:
        """Both directions ended with a FIN: close both sides."""
        writers = [t for i, t in enumerate(self.tasks) if i % 2 == 1]
        if all(t.done() or t is asyncio.current_task() for t in writers):
            self._close(rst=False, reset=False)

    def abort(self, *, reset: bool) -> None:
        """End with a RST on both sides (`reset`: done by the test, counted)."""
        self._close(rst=True, reset=reset)

    def _close(self, *, rst: bool, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.info.closed_at = time.monotonic()
        self.info.reset = reset
        for _, writer in (self.client, self.upstream):
            if rst:
                _rst(writer)
            else:
                writer.close()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        self.proxy._pipes.discard(self)


class FaultProxy:
    """A fault-injecting TCP proxy to ``upstream_host:upstream_port``, on its own thread.

    Args:
        upstream_port: the Redis port to forward to.
        upstream_host: its host.
        seed: seeds the latency draws (reproducible runs).
    """

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", *, seed: int | None = None
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._rng = random.Random(seed)
        self._up: Range = (0.0, 0.0)
        self._down: Range = (0.0, 0.0)
        self._refusing = False
        self._pipes: set[_Pipe] = set()
        self._conns: list[ConnectionInfo] = []
        self._counts = {"accepted": 0, "refused": 0, "resets": 0}
        self._bytes = {"up": 0, "down": 0}
        self._reset_times: list[float] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event
        self._stopped: asyncio.Event

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<proxy port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        """Listen on a free loopback port; returns once it accepts connections."""
        ready = threading.Event()
        failed: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:
                failed.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name=f"fault-proxy-{id(self)}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failed:
            raise RuntimeError(f"fault proxy did not start: {failed}")
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopped.wait()
        self._server.close()
        for pipe in list(self._pipes):
            pipe.abort(reset=False)
        await self._server.wait_closed()

    def stop(self) -> None:
        """Close the listener and every connection (with a RST), and end the thread."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            self._counts["refused"] += 1
            _rst(writer)
            return
        self._counts["accepted"] += 1
        info = ConnectionInfo(len(self._conns), time.monotonic())
        self._conns.append(info)
        try:
            upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            info.closed_at = time.monotonic()
            _rst(writer)
            return
        pipe = _Pipe(self, info, (reader, writer), upstream)
        self._pipes.add(pipe)
        pipe.start()

    # -- control (thread-safe) --------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the proxy's loop and return its result."""
        if self._loop is None:
            raise RuntimeError("the proxy is not started")

        async def call() -> T:
            return fn()

        return self._run(call())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def set_latency(self, up: float | Range = 0.0, down: float | Range = 0.0) -> None:
        """Delay each chunk client->server by `up` and server->client by `down` (seconds, or a
        (low, high) range drawn per chunk); order is kept. Applies to bytes read from now on."""
        ranges = _range(up), _range(down)

        def apply() -> None:
            self._up, self._down = ranges

        self._call(apply)

    def blackhole(self) -> None:
        """Hold every byte both ways from now on, keeping the sockets open (see the module)."""
        self._call(self._flowing.clear)

    def heal(self, *, reset: bool = False) -> None:
        """End a blackhole: deliver the held bytes in order, or with `reset` reset every
        connection that lived through it (held bytes dropped); then traffic flows again."""

        def apply() -> None:
            if reset:
                self._reset_all()
            self._flowing.set()

        self._call(apply)

    def reset_all(self) -> int:
        """Reset (RST) every current connection; returns how many."""
        return self._call(self._reset_all)

    def _reset_all(self) -> int:
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.abort(reset=True)
        self._counts["resets"] += len(pipes)
        self._reset_times.append(time.monotonic())
        return len(pipes)

    def refuse(self, on: bool = True) -> None:
        """Reset new connections at once (`on`), or accept them again."""

        def apply() -> None:
            self._refusing = on

        self._call(apply)

    def stats(self) -> dict[str, int]:
        """accepted, refused, resets (connections reset by the test), active, bytes up/down."""

        def snapshot() -> dict[str, int]:
            return {
                **self._counts,
                "active": len(self._pipes),
                "bytes_up": self._bytes["up"],
                "bytes_down": self._bytes["down"],
            }

        return self._call(snapshot)

    def reset_times(self) -> list[float]:
        """When each :meth:`reset_all` (or ``heal(reset=True)``) ran, on :func:`time.monotonic`."""
        return self._call(lambda: list(self._reset_times))

    def connections(self) -> list[ConnectionInfo]:
        """A copy of every connection accepted so far, in accept order."""

        def snapshot() -> list[ConnectionInfo]:
            return [ConnectionInfo(**vars(c)) for c in self._conns]

        return self._call(snapshot)
