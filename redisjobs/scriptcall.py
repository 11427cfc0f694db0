"""One Lua script call on a real Redis in one round trip, past redis-py's per-command machinery.

A script call through redis-py (``Script.__call__`` → ``execute_command``) costs about as much
Python time as the round trip itself: its observability hooks (timings, pool-state counters,
the pool's name computed several times a command), a retry wrapper and response-callback lookup
around every command. An enqueue is one short script, so that overhead was most of an
enqueue's cost. Here a call takes a connection from the client's own pool, sends the packed
EVALSHA and reads the reply with the connection's own methods, which keep every guarantee that
matters:

* bounded: the connection's send and read apply its ``socket_timeout`` (COMMAND_TIMEOUT), and
  a reply that never comes raises redis-py's TimeoutError, which is never retried;
* a lost connection is retried as the client's own Retry says (once for a producer, never for a
  worker), with its backoff, after a disconnect, so the retry reconnects;
* NOSCRIPT (a restarted or flushed Redis) re-sends the call as EVAL, which runs the script and
  caches it again, in the same round trip count redis-py's reload costs plus none;
* an error reply (OOM, a script error) raises redis-py's own ResponseError subclass, and the
  connection, still in step, goes back to the pool; a cancelled or failed read disconnects it
  first (redis-py's read does), so no stale reply is ever read by the next user.

The embedded backend (fakeredis) keeps redis-py's Script objects: it has no connection pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError

Arg = str | bytes | int | float


class ScriptText:
    """A script's text and SHA1 (as redis-py's Script objects hold them), for a fast call."""

    __slots__ = ("sha", "text")

    def __init__(self, script: Any) -> None:
        self.sha: str = script.sha
        self.text: str = script.script


async def call_async(
    client: Redis, script: ScriptText, keys: Sequence[str], args: Sequence[Arg]
) -> Any:
    """Run `script` on a connection of `client`'s pool; its raw reply (see the module doc).

    Raises:
        redis.exceptions.RedisError: what redis-py's own call would raise.
    """
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        return await conn.retry.call_with_retry(
            lambda: _once_async(conn, script, keys, args),
            lambda _error: conn.disconnect(),  # the retry's send reconnects
        )
    finally:
        await pool.release(conn)


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


def call_sync(
    client: redis.Redis, script: ScriptText, keys: Sequence[str], args: Sequence[Arg]
) -> Any:
    """:func:`call_async` for redis-py's sync client (the socket itself bears the timeout)."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        return conn.retry.call_with_retry(
            lambda: _once_sync(conn, script, keys, args), lambda _error: conn.disconnect()
        )
    finally:
        pool.release(conn)


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
