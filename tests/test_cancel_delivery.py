"""A cancel that reaches a task while it writes to Redis is delivered, so that an
``asyncio.timeout`` around Redis calls always fires (Python 3.11's ``asyncio.wait_for``, which
redis-py wraps each write in, returns the write's result then and drops the cancel)."""

from __future__ import annotations

import asyncio
import random

import pytest
from redis.asyncio import Redis

from redisjobs import Client

ROUNDS = 400
TIMEOUTS = (0.0005, 0.001, 0.002, 0.003)


async def timeouts_lost(redis: Redis) -> int:
    """How many of ROUNDS timeouts around a loop of PINGs failed to end it (each such loop is
    stopped after a second instead)."""
    loop, lost = asyncio.get_running_loop(), 0
    for _ in range(ROUNDS):
        started = loop.time()
        try:
            async with asyncio.timeout(random.choice(TIMEOUTS)):
                while loop.time() - started < 1:
                    await redis.ping()
                lost += 1
        except TimeoutError:
            pass
    return lost


@pytest.mark.timeout(60)  # without the guard, lost cancels leave writes unsent: it runs on
async def test_a_timeout_around_redis_calls_always_fires(client: Client) -> None:
    redis = client.backend.client()
    try:
        assert await timeouts_lost(redis) == 0
    finally:
        await redis.aclose()
