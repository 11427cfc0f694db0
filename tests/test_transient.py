"""Which of a real Redis's error replies the worker's loops wait out (is_transient) and which
they raise: a loop that raises stops its worker, one that waits out a permanent error spins."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from redisjobs import Client
from redisjobs.connection import is_transient
from redisjobs.scripts import NAMES
from redisjobs.scripts.library import library
from redisjobs.testing import RedisServer

pytestmark = pytest.mark.redis_only


async def _error(call: object) -> RedisError:
    with pytest.raises(RedisError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_a_full_redis_is_waited_out_by_commands_and_functions_alike() -> None:
    lib = library(NAMES)
    with RedisServer() as server:
        async with Client(server.url, queue="q") as client:
            await client.enqueue("call", 1)  # the library loaded, the queue's keys made
            redis: Redis = client.redis
            await redis.config_set("maxmemory", 1)  # below what it uses: full
            refused = [
                await _error(redis.set("k", "v")),
                # a function without allow-oom is refused whole, before it runs
                await _error(redis.fcall(lib.function("promote"), 1, client.keys().prefix, 10)),
            ]
            assert all(is_transient(exc) for exc in refused), refused
            await redis.config_set("maxmemory", 0)
            await redis.set("s", "v")
            wrong_type = await _error(redis.hset("s", "f", "v"))
            assert not is_transient(wrong_type)
