"""Pipelined script calls on one connection: many calls in flight, one write a loop turn.

A call through a connection of its own waits a whole round trip with the connection idle, and
pays redis-py's per-read machinery (a timeout context, the parser's stream reads) on each: at
32 calls in flight that machinery, not Redis, is what limits a producer. A :class:`Channel`
holds one connection of the client's pool for script calls. The first call of a turn of the
event loop is written at once; the calls that come later in the same turn are written together
at its end (32 concurrent enqueues become two writes, which Redis reads and answers in one or
two passes). The connection's bytes go straight from the socket to hiredis's parser, which
hands each reply to its caller in order.

What a call through redis-py guaranteed still holds:

* bounded: a call whose reply has not come within the connection's ``socket_timeout`` of its
  write breaks the channel with redis-py's TimeoutError (a reply that late means a Redis that
  is wedged, so the calls behind it fail too rather than wait their own turn);
* a lost connection fails every call in flight with redis-py's ConnectionError, which the
  caller's Retry may re-send on a new channel;
* a cancelled call never leaves its reply to another: replies are matched by position, and the
  reply of a cancelled call is read and dropped. A call cancelled before its write is never
  sent;
* error replies raise the exception redis-py's own parser would (``parse_error``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis
from redis._parsers import BaseParser
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

from .cluster import SlotConnection
from .sentinel import FollowMaster, demoted

READ_SIZE = 1 << 16
"""Bytes a read asks the socket for."""


class Channel:
    """One connection's script calls, pipelined (see the module doc).

    A channel whose connection failed (lost, timed out, a reply it could not parse) is
    ``broken`` for good: its calls in flight have failed, and its owner disconnects the
    connection and hands it back to the pool (:meth:`close`).
    """

    def __init__(self, conn: AbstractConnection) -> None:
        reader, writer = conn._reader, conn._writer
        if reader is None or writer is None:
            raise RedisConnectionError("the connection for script calls is not connected")
        self.conn = conn
        self.broken: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._writer = writer
        self._parser = hiredis.Reader(
            protocolError=InvalidResponse,
            replyError=BaseParser.parse_error,
            **_decoding(conn),
        )
        # A sentinel's master, or a cluster slot's: a reply saying the data is served
        # elsewhere now is a lost connection (and the reconnect asks where), as the connection
        # classes of redisjobs.sentinel and redisjobs.cluster make it.
        self._moved = _moved_check(conn)
        self._timeout: float | None = conn.socket_timeout
        self._queued: list[tuple[bytes, list[asyncio.Future[Any]], float]] = []
        # The WAITs of the turn's end write, each shared by the calls that asked for it.
        self._waits: dict[bytes, tuple[asyncio.Future[Any], float]] = {}
        self._sent: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._turn = False  # a call was written in this turn of the loop: the rest wait for its end
        self._transport = writer.transport
        self._transport.set_protocol(_Replies(self, self._transport.get_protocol()))

    def send(self, packed: bytes, replies: int, grace: float = 0.0) -> list[asyncio.Future[Any]]:
        """Queue `packed` (one or more commands) for this turn's write; the futures of its
        `replies` replies, in order. `grace`: seconds Redis may hold them on purpose (a
        ``WAIT``'s timeout), beyond the connection's timeout."""
        if self.broken is not None:
            raise RedisConnectionError(f"the connection was lost: {self.broken}")
        futures = [self._loop.create_future() for _ in range(replies)]
        self._queued.append((packed, futures, grace))
        if not self._turn:  # the turn's first call goes now; the others at the turn's end
            self._turn = True
            self._loop.call_soon(self._end_turn)
            self._write()
        return futures

    def send_waited(
        self, packed: bytes, replies: int, wait: bytes, grace: float
    ) -> tuple[list[asyncio.Future[Any]], asyncio.Future[Any]]:
        """:meth:`send`, then the ``WAIT`` command `wait` (packed, with a timeout of `grace`
        seconds) on the same connection at the end of this turn; the call's futures, and the
        WAIT's.

        A WAIT covers every write made on its connection before it, so the calls of one turn
        that ask for the same WAIT share one, written after all of them: 32 durable calls in
        flight cost one WAIT, not 32. If the connection is lost before the WAIT's reply, the
        calls fail with it (a WAIT on another connection would confirm nothing). The future is
        shared: await it shielded.
        """
        futures = self.send(packed, replies, grace)  # the turn's end is scheduled now
        shared = self._waits.get(wait)
        if shared is None:
            acked = self._loop.create_future()
            acked.add_done_callback(_retrieved)  # its callers may all have gone
            shared = self._waits[wait] = (acked, grace)
        return futures, shared[0]

    async def close(self) -> None:
        """Fail what is in flight, close the connection, and hand it back to nobody: the
        caller releases :attr:`conn` to its pool."""
        self._break(RedisConnectionError("the channel was closed"))
        await self.conn.disconnect(nowait=True)

    def _end_turn(self) -> None:
        self._turn = False
        self._write()

    def _write(self) -> None:
        queued, self._queued = self._queued, []
        if self._waits and not self._turn:  # the turn's end: its WAITs after its calls
            queued += [(command, [f], grace) for command, (f, grace) in self._waits.items()]
            self._waits = {}
        if self.broken is not None:
            _fail([f for _, futures, _ in queued for f in futures], self.broken)
            return
        now = self._loop.time() + (self._timeout or 0.0)
        # Replies come in order: none is due before the one ahead of it (a WAIT's grace).
        deadline = self._sent[-1][1] if self._sent and self._sent[-1][1] > now else now
        out: list[bytes] = []
        for packed, futures, grace in queued:
            if all(f.cancelled() for f in futures):
                continue  # cancelled before it was written: it never runs
            out.append(packed)
            if grace:
                deadline = max(deadline, now + grace)
            self._sent.extend((f, deadline) for f in futures)
        if not out:
            return
        try:
            self._writer.writelines(out)
        except (RuntimeError, OSError) as exc:  # uvloop: "the handler is closed"
            self._break(RedisConnectionError(f"Error while writing to socket: {exc}"))
            return
        self._watch()

    def received(self, data: bytes) -> None:
        """Hand the replies in `data` to their calls, in order."""
        parser, sent = self._parser, self._sent
        parser.feed(data)
        try:
            while (reply := parser.gets()) is not False:
                future = sent.popleft()[0]
                if future.done():
                    continue  # its caller was cancelled: the reply is dropped
                if isinstance(reply, Exception):
                    if self._moved is not None and self._moved(reply):
                        sent.appendleft((future, 0.0))  # it fails with the rest, as lost
                        raise _Demoted(reply)
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (InvalidResponse, IndexError) as exc:  # garbage, or a reply nobody asked for
            self._break(RedisConnectionError(f"Error while reading from socket: {exc!r}"))
            self._transport.abort()
        except _Demoted as exc:  # every call from here on was refused too, or is not answered
            where = "the master was demoted by a failover, or the slot moved"
            self._break(RedisConnectionError(f"served elsewhere now ({where}): {exc}"))
            self._transport.abort()

    def _watch(self) -> None:
        """Arm the timer for the oldest call in flight's deadline (one timer a channel; it
        re-arms itself as replies come, rather than one per call)."""
        if self._timer is None and self._sent and self._timeout:
            self._timer = self._loop.call_at(self._sent[0][1], self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._sent and self._sent[0][1] <= self._loop.time():
            # redis-py's own words for a reply that never came
            self._break(RedisTimeoutError(f"Timeout reading from {self.conn._host_error()}"))
            self._transport.abort()
        else:
            self._watch()

    def _break(self, exc: BaseException) -> None:
        if self.broken is None:
            self.broken = exc
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        _fail([f for f, _ in self._sent], self.broken)
        self._sent.clear()


class _Demoted(Exception):
    """A reply that says the data is served elsewhere now (a demoted master, a moved slot)."""


def _moved_check(conn: AbstractConnection) -> Callable[[BaseException], bool] | None:
    """What tells, for `conn`'s kind, a reply saying the data is served elsewhere now."""
    if isinstance(conn, FollowMaster):
        return demoted
    if isinstance(conn, SlotConnection):
        return conn.moved
    return None


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a shared future's exception as read (asyncio logs one nobody read)."""
    if not future.cancelled():
        future.exception()


def _fail(futures: list[asyncio.Future[Any]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)


class _Replies(asyncio.Protocol):
    """The connection's protocol once a channel holds it: bytes go straight to the channel's
    parser (no stream buffer, no reader task between the socket and the calls); the end of the
    connection and its flow control also reach the protocol redis-py's streams had, so that
    its own close (``disconnect``, which waits for that) completes."""

    def __init__(self, channel: Channel, streams: asyncio.BaseProtocol) -> None:
        self._channel, self._streams = channel, streams

    def data_received(self, data: bytes) -> None:
        self._channel.received(data)

    def eof_received(self) -> bool | None:
        self._channel._break(RedisConnectionError("Connection closed by server."))
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc!r}" if exc is not None else "."
        self._channel._break(RedisConnectionError(f"Connection closed{reason}"))
        self._streams.connection_lost(exc)

    def pause_writing(self) -> None:
        self._streams.pause_writing()

    def resume_writing(self) -> None:
        self._streams.resume_writing()


def _decoding(conn: AbstractConnection) -> dict[str, str]:
    """hiredis's decoding arguments for a client that decodes replies (ours do not)."""
    encoder = conn.encoder
    if not encoder.decode_responses:
        return {}
    return {"encoding": encoder.encoding, "errors": encoder.encoding_errors}
