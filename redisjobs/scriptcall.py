"""One Lua script call on a real Redis in one round trip, past redis-py's per-command machinery.

A script call through redis-py (``Script.__call__`` → ``execute_command``) costs about as much
Python time as the round trip itself: its observability hooks (timings, pool-state counters,
the pool's name computed several times a command), a retry wrapper and response-callback lookup
around every command. An enqueue is one short script, so that overhead was most of an
enqueue's cost. Here a call takes a connection of the client's own pool, sends the packed
EVALSHA and reads the reply with the connection's own methods, which keep every guarantee that
matters:

* bounded: the connection's send and read apply its ``socket_timeout`` (COMMAND_TIMEOUT), and
  a reply that never comes raises redis-py's TimeoutError, which is never retried;
* a lost connection is retried as the client's own Retry says, as redis-py's call was (once
  for a producer, whose calls are idempotent: ids made before the write, a token per cancel;
  never for a worker), with its backoff, after a disconnect, so the retry reconnects;
* NOSCRIPT (a restarted or flushed Redis) re-sends the call as EVAL, which runs the script and
  caches it again: one round trip fewer than redis-py's reload (SCRIPT LOAD, then EVALSHA);
* an error reply (OOM, a script error) raises redis-py's own ResponseError subclass and leaves
  the connection in step; a cancelled or failed read disconnects it first (redis-py's read
  does), and it goes back to the pool, so no stale reply is ever read by the next user.

The embedded backend (fakeredis) keeps redis-py's Script objects: it has no connection pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .connection import MAX_CONNECTIONS

Arg = str | bytes | int | float
"""A script argument."""


class ScriptText:
    """A script's text and SHA1 (as redis-py's Script objects hold them), for a fast call."""

    __slots__ = ("sha", "text")

    def __init__(self, script: Any) -> None:
        self.sha: str = script.sha
        self.text: str = script.script


IDLE_CAP = MAX_CONNECTIONS // 2
"""Connections a caller keeps between calls: the pool's other half stays free for every other
command (and a stream of concurrent calls beyond the cap still runs, through the pool)."""


class AsyncCaller:
    """Calls scripts on the connections of one asyncio client's pool (see the module doc).

    It keeps the connections of finished calls (up to :data:`IDLE_CAP`) for the next ones
    rather than handing them back: the pool's get and release (a condition, a lock, a timeout
    and their observability hooks) cost as much as the rest of the call. A kept connection
    stays the pool's (counted in use, closed by its client's ``aclose``), and is checked as
    the pool checks one it hands out (reconnected if the server closed it meanwhile).
    """

    def __init__(self, client: Redis) -> None:
        self._pool = client.connection_pool
        self._idle: list[AbstractConnection] = []

    async def __call__(self, script: ScriptText, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run `script`; its raw reply.

        Raises:
            redis.exceptions.RedisError: what redis-py's own call would raise.
        """
        kept = self._idle.pop() if self._idle else None
        conn = kept or await self._pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            if kept is not None:
                await self._pool.ensure_connection(conn)
            reply = await conn.retry.call_with_retry(
                lambda: _once_async(conn, script, keys, args),
                lambda _error: conn.disconnect(),  # the retry's send reconnects
            )
        except BaseException:  # a failed or cancelled read has disconnected it already
            await self._pool.release(conn)
            raise
        if len(self._idle) < IDLE_CAP:
            self._idle.append(conn)
        else:
            await self._pool.release(conn)
        return reply


async def _once_async(
    conn: AbstractConnection, script: ScriptText, keys: Sequence[str], args: Sequence[Arg]
) -> Any:
    await conn.send_packed_command(_packed(conn, "EVALSHA", script.sha, keys, args), False)
    try:
        return await conn.read_response()
    except NoScriptError:
        pass  # the connection is in step: an error reply was read
    await conn.send_packed_command(_packed(conn, "EVAL", script.text, keys, args), False)
    return await conn.read_response()


class SyncCaller:
    """:class:`AsyncCaller` for redis-py's sync client, shared by threads (the socket itself
    bears the timeout)."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._idle: list[Any] = []

    def __call__(self, script: ScriptText, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run `script`; its raw reply (RedisError: what redis-py's own call would raise)."""
        try:
            kept = self._idle.pop()  # pop, not a check first: another thread may take the last
        except IndexError:
            kept = None
        conn = kept or self._pool.get_connection()
        try:
            if kept is not None:
                _ensure_connection(conn)
            reply = conn.retry.call_with_retry(
                lambda: _once_sync(conn, script, keys, args), lambda _error: conn.disconnect()
            )
        except BaseException:
            self._pool.release(conn)
            raise
        if len(self._idle) < IDLE_CAP:
            self._idle.append(conn)
        else:
            self._pool.release(conn)
        return reply


def _once_sync(conn: Any, script: ScriptText, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    conn.send_packed_command(_packed(conn, "EVALSHA", script.sha, keys, args), False)
    try:
        return conn.read_response()
    except NoScriptError:
        pass
    conn.send_packed_command(_packed(conn, "EVAL", script.text, keys, args), False)
    return conn.read_response()


def _packed(conn: Any, command: str, script: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    return conn.pack_command(command, script, len(keys), *keys, *args)


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
