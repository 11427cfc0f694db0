"""Function calls past redis-py's execute_command (redisjobs.scriptcall), on a real redis-server.

A call must behave as redis-py's own call does: a function Redis lacks has its library loaded
and runs anyway, an error reply raises (as redis-py's exception for it) and leaves the
connection usable, a kept connection the server closed is reconnected, a cancelled call never
leaves a reply for the next one. Each holds for the asyncio and the sync caller. The asyncio
caller's calls share one connection, pipelined (redisjobs.channel): replies reach their own
callers, a reply that never comes fails the calls in flight within the timeout, and a call
cancelled before its write never runs. The sync caller's kept connections stay under half the
pool.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redisjobs.connection import Backend
from redisjobs.scriptcall import IDLE_CAP, AsyncCaller, Function, SyncCaller
from redisjobs.sync.driver import connect

pytestmark = pytest.mark.redis_only

LIBRARY = """#!lua name=scriptcall_test
local function now() local t = redis.call('TIME') return t[1] * 1e6 + t[2] end
redis.register_function('sc_echo', function(keys, args) return {keys[1], args[1]} end)
redis.register_function('sc_fail', function(keys, args)
  return redis.error_reply('ERR refused: ' .. args[1])
end)
redis.register_function('sc_error', function(keys, args) return redis.error_reply(args[1]) end)
redis.register_function('sc_incr', function(keys, args) return redis.call('INCR', keys[1]) end)
-- Half a second of Redis time (or args[1] microseconds), so a call of it can be cancelled, or
-- time out, before its reply comes.
redis.register_function('sc_slow', function(keys, args)
  local stop = now() + (tonumber(args[1]) or 500000)
  repeat until now() >= stop
  return 1
end)
"""
ECHO, FAIL, SLOW, ERROR, INCR = (
    Function(name, LIBRARY) for name in ("sc_echo", "sc_fail", "sc_slow", "sc_error", "sc_incr")
)
BROKEN = Function("sc_broken_echo", "#!lua name=scriptcall_broken\nredis.register_function(")
"""A function whose library Redis refuses to load."""
ABSENT = Function("sc_absent", LIBRARY)
"""A function its library (loaded) does not define."""


async def test_async_missing_library_is_loaded_and_the_call_runs(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call = AsyncCaller(client)
    try:
        await client.function_flush()
        key, arg = await call(ECHO, ["{q}k"], ["a"])
        assert (key, arg) == (b"{q}k", b"a")
        assert await client.function_list(library="scriptcall_test") != []
    finally:
        await client.aclose()


def test_sync_missing_library_is_loaded_and_the_call_runs(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call = SyncCaller(client)
    try:
        client.function_flush()
        assert call(ECHO, ["{q}k"], ["b"]) == [b"{q}k", b"b"]
        assert client.function_list(library="scriptcall_test") != []
    finally:
        client.close()


async def test_async_a_library_that_cannot_load_raises_its_own_error(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call = AsyncCaller(client)
    try:
        with pytest.raises(ResponseError, match="Error compiling function"):
            await call(BROKEN, ["{q}k"], [])
        await call(ECHO, ["{q}k"], ["loaded"])  # its library is there: the load says exists
        with pytest.raises(ResponseError, match="Function not found"):
            await call(ABSENT, ["{q}k"], [])
        assert (await call(ECHO, ["{q}k"], ["after"]))[1] == b"after"
    finally:
        await client.aclose()


def test_sync_a_library_that_cannot_load_raises_its_own_error(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call = SyncCaller(client)
    try:
        with pytest.raises(ResponseError, match="Error compiling function"):
            call(BROKEN, ["{q}k"], [])
        call(ECHO, ["{q}k"], ["loaded"])
        with pytest.raises(ResponseError, match="Function not found"):
            call(ABSENT, ["{q}k"], [])
        assert call(ECHO, ["{q}k"], ["after"])[1] == b"after"
    finally:
        client.close()


async def test_async_error_reply_raises_and_the_connection_stays_in_step(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call = AsyncCaller(client)
    fail, echo = FAIL, ECHO
    try:
        with pytest.raises(ResponseError, match="refused: x"):
            await call(fail, ["{q}k"], ["x"])
        assert (await call(echo, ["{q}k"], ["after"]))[1] == b"after"
    finally:
        await client.aclose()


async def test_async_error_reply_raises_redis_pys_exception_for_it(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call = AsyncCaller(client)
    try:
        with pytest.raises(ReadOnlyError, match="replica"):  # what a failover's loops look for
            await call(ERROR, ["{q}k"], ["READONLY You can't write against a read only replica."])
        with pytest.raises(ResponseError, match=r"^WRONGTYPE odd"):
            await call(ERROR, ["{q}k"], ["WRONGTYPE odd"])
    finally:
        await client.aclose()


def test_sync_error_reply_raises_and_the_connection_stays_in_step(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call, fail, echo = SyncCaller(client), FAIL, ECHO
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
    call, echo = AsyncCaller(client), ECHO
    try:
        await call(echo, ["{q}k"], ["1"])
        assert _kill_others(redis_url) >= 1
        await asyncio.sleep(0.05)  # the loop sees the close
        assert (await call(echo, ["{q}k"], ["2"]))[1] == b"2"
    finally:
        await client.aclose()


async def test_async_a_call_on_a_connection_just_lost_is_sent_again(redis_url: str) -> None:
    producer, worker = Backend(redis_url).client(), Backend(redis_url).client(retries=0)
    try:
        for client, retried in ((producer, True), (worker, False)):
            call = AsyncCaller(client)
            await call(ECHO, ["{q}k"], ["1"])
            assert _kill_others(redis_url) >= 1  # and the call goes before the loop hears of it
            if retried:  # a producer's Retry sends it again, on a new connection
                assert (await call(ECHO, ["{q}k"], ["2"]))[1] == b"2"
            else:  # a worker decides itself whether to send a call again
                with pytest.raises(redis.exceptions.ConnectionError):
                    await call(ECHO, ["{q}k"], ["2"])
            assert (await call(ECHO, ["{q}k"], ["3"]))[1] == b"3"
    finally:
        await producer.aclose()
        await worker.aclose()


async def test_async_meanwhile_runs_once_while_redis_runs_the_call(redis_url: str) -> None:
    """The caller's own work (a flow's ScriptCall.meanwhile) overlaps the call: it runs as soon
    as the call is written, long before a 0.3 s call's reply, and once only, also when a lost
    connection has the call sent again."""
    client = Backend(redis_url).client()
    call = AsyncCaller(client)
    ran: list[float] = []
    try:
        assert await call(SLOW, ["{q}k"], ["300000"], lambda: ran.append(time.monotonic())) == 1
        assert len(ran) == 1 and ran[0] < time.monotonic() - 0.2
        assert _kill_others(redis_url) >= 1  # the next call goes out on a dead connection first
        assert (await call(ECHO, ["{q}k"], ["2"], lambda: ran.append(0.0)))[1] == b"2"
        assert len(ran) == 2
    finally:
        await client.aclose()


def test_sync_kept_connection_killed_by_the_server_is_reconnected(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call, echo = SyncCaller(client), ECHO
    try:
        call(echo, ["{q}k"], ["1"])
        assert _kill_others(redis_url) >= 1
        assert call(echo, ["{q}k"], ["2"])[1] == b"2"
    finally:
        client.close()


async def test_async_cancelled_call_leaves_no_reply_behind(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call, slow, echo = AsyncCaller(client), SLOW, ECHO
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


async def test_async_calls_in_flight_share_one_connection(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call, echo = AsyncCaller(client), ECHO
    try:
        before = len(await client.client_list(_type="normal"))
        replies = await asyncio.gather(*(call(echo, ["{q}k"], [str(i)]) for i in range(200)))
        assert [r[1] for r in replies] == [str(i).encode() for i in range(200)]
        assert len(await client.client_list(_type="normal")) == before + 1
    finally:
        await client.aclose()


async def test_async_a_reply_that_never_comes_fails_the_calls_in_flight(redis_url: str) -> None:
    client = Backend(redis_url).client(socket_timeout=0.2, retries=0)
    call = AsyncCaller(client)
    try:
        await call(ECHO, ["{q}k"], ["warm"])
        t0 = time.monotonic()
        slow = asyncio.ensure_future(call(SLOW, ["{q}k"], [1_500_000]))  # 1.5 s of Redis time
        behind = asyncio.ensure_future(call(ECHO, ["{q}k"], ["behind"]))
        for pending in (slow, behind):
            with pytest.raises(RedisTimeoutError, match="Timeout reading from"):
                await pending
        assert time.monotonic() - t0 < 1.2  # at the timeout, not when the reply came
        await asyncio.sleep(1.6 - (time.monotonic() - t0))  # the slow script ends
        assert (await call(ECHO, ["{q}k"], ["after"]))[1] == b"after"  # on a new connection
    finally:
        await client.aclose()


async def test_async_a_call_cancelled_before_its_write_never_runs(redis_url: str) -> None:
    client = Backend(redis_url).client()
    call, key = AsyncCaller(client), "{q}cancelled-before-write"
    try:
        await call(ECHO, ["{q}k"], ["warm"])
        kept = asyncio.ensure_future(call(INCR, [key], []))  # the turn's first: written at once
        cancelled = asyncio.ensure_future(call(INCR, [key], []))  # written at the turn's end
        await asyncio.sleep(0)  # both sent to the channel
        cancelled.cancel()
        assert await kept == 1
        assert await client.get(key) == b"1"
        assert cancelled.cancelled()
    finally:
        await client.aclose()


def test_sync_keeps_at_most_half_the_pool_across_threads(redis_url: str) -> None:
    client = connect(Backend(redis_url))
    call, echo = SyncCaller(client), ECHO
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
        call(ECHO, ["{q}k"], ["1"])
        assert len(call._idle) == 1
        assert len(probe.client_list(_type="normal")) == before + 1
        client.close()
        assert len(probe.client_list(_type="normal")) == before
