"""One Lua function call (FCALL) in one round trip, past redis-py's per-command machinery.

A call through redis-py (``execute_command``) costs about as much Python time as the round trip
itself: its observability hooks (timings, pool-state counters, the pool's name computed several
times a command), a retry wrapper and response-callback lookup around every command. An
enqueue is one short call, so that overhead was most of an enqueue's cost. Here an asyncio
client's calls share one pipelined connection of its pool (:class:`~redisjobs.channel.Channel`,
whose module doc says how it keeps the guarantees below), and a sync client's call takes a
connection of its pool and sends the packed FCALL and reads the reply with the connection's own
methods. Either way:

* bounded: a reply later than the connection's ``socket_timeout`` (COMMAND_TIMEOUT) raises
  redis-py's TimeoutError, which is never retried;
* a lost connection is retried as the client's own Retry says, as redis-py's call was (once
  for a producer, whose calls are idempotent: ids made before the write, a token per cancel;
  never for a worker), with its backoff, on a new connection;
* a function Redis does not have (a restarted or flushed Redis, a new release's library) is
  loaded (FUNCTION LOAD of its library, sent with the call again in one round trip);
* an error reply (OOM, a script error) raises redis-py's own ResponseError subclass and leaves
  the connection in step; no reply ever reaches a call other than its own (a cancelled call's
  reply is read and dropped by the channel; a sync read that failed disconnects first).

The embedded backend (fakeredis) has no connection pool: :func:`call_embedded` calls through
its redis-py client, and loads the library the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .channel import Channel
from .connclasses import pack
from .connection import MAX_CONNECTIONS
from .durability import Durability

Arg = str | bytes | int | float
"""A script argument."""


class Function:
    """A function to call by name, and the text of the library that defines it (loaded when
    Redis does not have it)."""

    __slots__ = ("library", "name")

    def __init__(self, name: str, library: str) -> None:
        self.name = name
        self.library = library


def _missing(error: ResponseError) -> bool:
    """Whether `error` is Redis's answer to a call of a function it does not have."""
    return str(error).startswith("Function not found")


def _present(error: ResponseError) -> bool:
    """Whether FUNCTION LOAD's `error` says the library is there (another client loaded it)."""
    return "already exists" in str(error)


async def call_embedded(client: Any, fn: Function, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    """Call `fn` through an asyncio `client`'s own command methods (the embedded backend),
    loading its library first when the server does not have it."""
    try:
        return await client.fcall(fn.name, len(keys), *keys, *args)
    except ResponseError as exc:
        if not _missing(exc):
            raise
    await load(client, fn.library)
    return await client.fcall(fn.name, len(keys), *keys, *args)


def call_embedded_sync(client: Any, fn: Function, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    """:func:`call_embedded` through a sync client."""
    try:
        return client.fcall(fn.name, len(keys), *keys, *args)
    except ResponseError as exc:
        if not _missing(exc):
            raise
    try:
        client.function_load(fn.library)
    except ResponseError as exc:
        if not _present(exc):
            raise
    return client.fcall(fn.name, len(keys), *keys, *args)


async def load(client: Any, library: str) -> None:
    """FUNCTION LOAD `library` through an asyncio `client`, unless the server has it already."""
    try:
        await client.function_load(library)
    except ResponseError as exc:
        if not _present(exc):
            raise


IDLE_CAP = MAX_CONNECTIONS // 2
"""Connections a sync caller keeps between calls: the pool's other half stays free for every
other command (and a stream of concurrent calls beyond the cap still runs, through the pool)."""


class AsyncCaller:
    """Calls scripts of one asyncio client through a :class:`~redisjobs.channel.Channel`: one
    connection of the client's pool, taken at the first call (and again after it is lost),
    which every call of the client shares, pipelined.

    The connection stays the pool's (counted in use, closed by its client's ``aclose``, which
    ends the channel). A lost connection is retried as the client's Retry says.
    """

    def __init__(self, client: Redis) -> None:
        self._pool = client.connection_pool
        retry = client.get_retry()
        self._retry = retry if retry is not None else Retry(NoBackoff(), 0)
        self._channel: Channel | None = None
        self._opening = asyncio.Lock()

    async def __call__(
        self,
        fn: Function,
        keys: Sequence[str],
        args: Sequence[Arg],
        meanwhile: Callable[[], object] | None = None,
        wait: Durability | None = None,
    ) -> Any:
        """Call `fn`; its raw reply. `meanwhile` runs once, as soon as the call is written.
        With `wait`, a ``WAIT`` follows the call on the same connection (shared with the other
        durable calls of the turn), and the reply is returned once the replicas confirmed it.

        Raises:
            redis.exceptions.RedisError: what redis-py's own call would raise.
            NotReplicated: `wait`'s replicas did not confirm the call in time.
        """
        packed = pack(_fcall(fn, keys, args))
        todo = [meanwhile] if meanwhile is not None else []
        if wait is not None:
            waited = (wait, pack(wait.command))
            return await self._retry.call_with_retry(
                lambda: self._waited(fn, packed, todo, waited), _nothing_to_undo
            )
        return await self._retry.call_with_retry(
            lambda: self._once(fn, packed, todo), _nothing_to_undo
        )

    async def _once(self, fn: Function, packed: bytes, todo: list[Callable[[], object]]) -> Any:
        channel = self._channel
        if channel is None or channel.broken is not None:
            channel = await self._open()
        (reply,) = channel.send(packed, 1)
        while todo:  # the caller's own work, while Redis runs the call (once, not per try)
            todo.pop()()
        try:
            return await reply
        except ResponseError as exc:  # the channel is in step: an error reply was read
            if not _missing(exc):
                raise
        loaded, reply = channel.send(pack(("FUNCTION", "LOAD", fn.library)) + packed, 2)
        outcomes = await _settled([reply, loaded], errors=True)
        return _answer(*outcomes)

    async def _waited(
        self,
        fn: Function,
        packed: bytes,
        todo: list[Callable[[], object]],
        waited: tuple[Durability, bytes],
    ) -> Any:
        """:meth:`_once`, returning once the replicas confirmed the call (its WAIT is shared
        with the other durable calls of the turn: :meth:`Channel.send_waited`)."""
        wait, command = waited
        channel = self._channel
        if channel is None or channel.broken is not None:
            channel = await self._open()
        (reply,), acked = channel.send_waited(packed, 1, command, wait.timeout)
        while todo:
            todo.pop()()
        try:
            return wait.confirmed(*await _settled([reply, asyncio.shield(acked)]))
        except ResponseError as exc:
            if not _missing(exc):
                raise
        load = pack(("FUNCTION", "LOAD", fn.library))
        (loaded, reply), acked = channel.send_waited(load + packed, 2, command, wait.timeout)
        outcomes = await _settled([reply, loaded, asyncio.shield(acked)], errors=True)
        return wait.confirmed(_answer(outcomes[0], outcomes[1]), outcomes[2])

    async def _open(self) -> Channel:
        """The channel, made anew on a connection of the pool when there is none or it broke
        (one caller makes it; the others wait for that one)."""
        async with self._opening:
            channel = self._channel
            if channel is None or channel.broken is not None:
                self._channel = None
                if channel is not None:
                    await channel.close()
                    await self._pool.release(channel.conn)
                conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
                try:
                    channel = Channel(conn)
                except BaseException:
                    await self._pool.release(conn)
                    raise
                self._channel = channel
            return channel


async def _settled(futures: list[asyncio.Future[Any]], *, errors: bool = False) -> list[Any]:
    """The replies of `futures`, once every one is in (so that no exception is left unread).

    Raises:
        BaseException: the first that is not an error reply (a lost connection fails them
            all); the first error reply too, unless `errors` asks for them as values.
    """
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, ResponseError):
            raise outcome
    if not errors:
        for outcome in outcomes:
            if isinstance(outcome, ResponseError):
                raise outcome
    return outcomes


async def _nothing_to_undo(_error: Exception) -> None:
    """A broken channel is replaced by the next call (:meth:`AsyncCaller._open`)."""


class SyncCaller:
    """:class:`AsyncCaller` for redis-py's sync client, shared by threads (the socket itself
    bears the timeout)."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._idle: list[Any] = []

    def __call__(
        self,
        fn: Function,
        keys: Sequence[str],
        args: Sequence[Arg],
        wait: Durability | None = None,
    ) -> Any:
        """Call `fn`; its raw reply (RedisError: what redis-py's own call would raise), once
        `wait`'s replicas confirmed it (NotReplicated if they did not in time)."""
        try:
            kept = self._idle.pop()  # pop, not a check first: another thread may take the last
        except IndexError:
            kept = None
        conn = kept or self._pool.get_connection()
        try:
            if kept is not None:
                _ensure_connection(conn)
            once = _once_sync if wait is None else functools.partial(_once_durable, wait=wait)
            reply = conn.retry.call_with_retry(
                lambda: once(conn, fn, keys, args), lambda _error: conn.disconnect()
            )
        except BaseException:
            self._pool.release(conn)
            raise
        if len(self._idle) < IDLE_CAP:
            self._idle.append(conn)
        else:
            self._pool.release(conn)
        return reply


def _once_sync(conn: Any, fn: Function, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    conn.send_packed_command(_packed(conn, fn, keys, args), False)
    try:
        return conn.read_response()
    except ResponseError as exc:
        if not _missing(exc):
            raise
    conn.send_packed_command(_reloaded(conn, fn, keys, args), False)
    loaded = _read_sync(conn)
    return _answer(_read_sync(conn), loaded)


def _once_durable(
    conn: Any, fn: Function, keys: Sequence[str], args: Sequence[Arg], wait: Durability
) -> Any:
    """:func:`_once_sync` with `wait`'s ``WAIT`` in the same write, read with its timeout
    added to the socket's."""
    calls = [_fcall(fn, keys, args), wait.command]
    with _patient(conn, wait.timeout):
        replies = _exchange(conn, calls)
        if isinstance(replies[0], ResponseError) and _missing(replies[0]):
            loaded, *replies = _exchange(conn, [("FUNCTION", "LOAD", fn.library), *calls])
            return wait.confirmed(_answer(replies[0], loaded), replies[1])
    return wait.confirmed(_answer(replies[0], None), replies[1])


def _exchange(conn: Any, commands: list[tuple[Arg, ...]]) -> list[Any]:
    """Send `commands` in one write; their replies, error replies as values."""
    conn.send_packed_command(conn.pack_commands(commands), False)
    return [_read_sync(conn) for _ in commands]


@contextlib.contextmanager
def _patient(conn: Any, seconds: float) -> Iterator[None]:
    """`seconds` more for the replies read inside (a connected sync connection's socket)."""
    conn.connect()
    sock = conn._sock
    sock.settimeout(conn.socket_timeout + seconds)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # closed by a failed read: nothing to restore
            sock.settimeout(conn.socket_timeout)


def _read_sync(conn: Any) -> Any:
    try:
        return conn.read_response()
    except ResponseError as exc:
        return exc


def _answer(reply: Any, loaded: Any) -> Any:
    """The reply of a call sent after its library's FUNCTION LOAD (`loaded`, that load's reply
    or error): when the call failed, the load's own error if it failed (the call then failed
    for want of the function), else the call's."""
    if isinstance(reply, ResponseError):
        if isinstance(loaded, ResponseError) and not _present(loaded):
            raise loaded
        raise reply
    return reply


def _fcall(fn: Function, keys: Sequence[str], args: Sequence[Arg]) -> tuple[Arg, ...]:
    """The FCALL command of a call, as arguments to pack."""
    return ("FCALL", fn.name, len(keys), *keys, *args)


def _packed(conn: Any, fn: Function, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    return conn.pack_command(*_fcall(fn, keys, args))


def _reloaded(conn: Any, fn: Function, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    """FUNCTION LOAD of `fn`'s library, then the call: one round trip (the library's functions
    are there for the call as soon as the load's reply is written)."""
    return conn.pack_commands([("FUNCTION", "LOAD", fn.library), _fcall(fn, keys, args)])


def _ensure_connection(conn: Any) -> None:
    """What redis-py's sync pool checks before it hands a connection out (its own
    ``ensure_connection`` is newer than the oldest redis-py we support): connected, and no
    unread data, else a fresh connection."""
    conn.connect()
    try:
        if conn.can_read():
            raise RedisConnectionError("Connection has data")
    except (RedisConnectionError, RedisTimeoutError, OSError):
        conn.disconnect()
        conn.connect()
