"""Script calls past redis-py's execute_command (redisjobs.scriptcall), on a real redis-server.

A call must behave as redis-py's own Script call does: NOSCRIPT runs the script anyway (and
caches it again), an error reply raises and leaves the connection usable, a kept connection the
server closed is reconnected, a cancelled call never leaves a reply for the next one, and the
connections it keeps stay under half the pool. Each holds for the asyncio and the sync caller.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

from redisjobs.connection import Backend
from redisjobs.scriptcall import IDLE_CAP, AsyncCaller, ScriptText, SyncCaller
from redisjobs.sync.driver import connect

pytestmark = pytest.mark.redis_only

ECHO = "return {KEYS[1], ARGV[1]}"
FAIL = "return redis.error_reply('ERR refused: ' .. ARGV[1])"
SLOW = """
local function now() local t = redis.call('TIME') return t[1] * 1e6 + t[2] end
local stop = now() + 500000
repeat until now() >= stop
return 1
"""
"""Half a second of Redis time, so a call of it can be cancelled before its reply comes."""


def _text(client: Any, source: str) -> ScriptText:
    return ScriptText(client.register_script(source))


async def test_async_noscript_runs_the_script_and_caches_it_again(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call, echo = AsyncCaller(client), _text(client, ECHO)
    try:
        await client.script_flush()
        key, arg = await call(echo, ["{q}k"], ["a"])
        assert (key, arg) == (b"{q}k", b"a")
        assert await client.script_exists(echo.sha) == [True]
    finally:
        await client.aclose()


def test_sync_noscript_runs_the_script_and_caches_it_again(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call, echo = SyncCaller(client), _text(client, ECHO)
    try:
        client.script_flush()
        assert call(echo, ["{q}k"], ["b"]) == [b"{q}k", b"b"]
        assert client.script_exists(echo.sha) == [True]
    finally:
        client.close()


async def test_async_error_reply_raises_and_the_connection_stays_in_step(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call = AsyncCaller(client)
    fail, echo = _text(client, FAIL), _text(client, ECHO)
    try:
        with pytest.raises(ResponseError, match="refused: x"):
            await call(fail, ["{q}k"], ["x"])
        assert (await call(echo, ["{q}k"], ["after"]))[1] == b"after"
    finally:
        await client.aclose()


def test_sync_error_reply_raises_and_the_connection_stays_in_step(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call, fail, echo = SyncCaller(client), _text(client, FAIL), _text(client, ECHO)
    try:
        with pytest.raises(ResponseError, match="refused: y"):
            call(fail, ["{q}k"], ["y"])
        assert call(echo, ["{q}k"], ["after"])[1] == b"after"
    finally:
        client.close()


def _kill_others(redis_url: str) -> int:
    """Close every other client connection of the server, as a Redis restart or a proxy would."""
    with redis.Redis.from_url(redis_url) as probe:
        return int(probe.client_kill_filter(_type="normal", skipme=True))


async def test_async_kept_connection_killed_by_the_server_is_reconnected(redis_url: str) -> None:
    client = Backend(redis_url).client(retries=0)  # a worker's: no retry to hide a failure
    call, echo = AsyncCaller(client), _text(client, ECHO)
    try:
        await call(echo, ["{q}k"], ["1"])
        assert len(call._idle) == 1
        assert _kill_others(redis_url) >= 1
        await asyncio.sleep(0.05)  # the loop sees the close
        assert (await call(echo, ["{q}k"], ["2"]))[1] == b"2"
    finally:
        await client.aclose()


def test_sync_kept_connection_killed_by_the_server_is_reconnected(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call, echo = SyncCaller(client), _text(client, ECHO)
    try:
        call(echo, ["{q}k"], ["1"])
        assert _kill_others(redis_url) >= 1
        assert call(echo, ["{q}k"], ["2"])[1] == b"2"
    finally:
        client.close()


async def test_async_cancelled_call_leaves_no_reply_behind(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call, slow, echo = AsyncCaller(client), _text(client, SLOW), _text(client, ECHO)
    try:
        await call(echo, ["{q}k"], ["warm"])  # one kept connection, which the slow call takes
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await call(slow, ["{q}k"], [])
        # The slow reply is still coming on that connection: a later call must not read it.
        assert (await call(echo, ["{q}k"], ["next"]))[1] == b"next"
        await asyncio.sleep(0.6)
        assert (await call(echo, ["{q}k"], ["later"]))[1] == b"later"
    finally:
        await client.aclose()


async def test_async_keeps_at_most_half_the_pool(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call, echo = AsyncCaller(client), _text(client, ECHO)
    try:
        replies = await asyncio.gather(
            *(call(echo, ["{q}k"], [str(i)]) for i in range(IDLE_CAP * 2))
        )
        assert [r[1] for r in replies] == [str(i).encode() for i in range(IDLE_CAP * 2)]
        assert len(call._idle) == IDLE_CAP
        assert len(await client.client_list(_type="normal")) > IDLE_CAP  # side by side
        await client.ping()  # the rest are back in the pool, for every other command
    finally:
        await client.aclose()


def test_sync_keeps_at_most_half_the_pool_across_threads(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call, echo = SyncCaller(client), _text(client, ECHO)
    start = threading.Barrier(IDLE_CAP * 2)

    def lane(i: int) -> None:
        start.wait()
        for n in range(20):
            assert call(echo, ["{q}k"], [f"{i}-{n}"])[1] == f"{i}-{n}".encode()

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(IDLE_CAP * 2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 0 < len(call._idle) <= IDLE_CAP
        client.ping()
    finally:
        client.close()


def test_sync_client_closed_closes_its_kept_connections(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as probe:
        before = len(probe.client_list(_type="normal"))
        client = connect(Backend(redis_url))
        call = SyncCaller(client)
        call(_text(client, ECHO), ["{q}k"], ["1"])
        assert len(call._idle) == 1
        assert len(probe.client_list(_type="normal")) == before + 1
        client.close()
        assert len(probe.client_list(_type="normal")) == before
