"""A task cancelled while it subscribes ends cancelled, wherever the cancel lands: a cancel
swallowed by the send (Python 3.11's wait_for inside redis-py) would leave it waiting forever
on a subscription it thinks it has."""

from __future__ import annotations

import asyncio

from redisjobs import Client
from redisjobs.subscriber import Subscriber


async def test_a_cancel_during_subscribe_is_never_swallowed(client: Client) -> None:
    subscriber = Subscriber(client.redis)
    try:
        for delay in range(40):  # land the cancel at each step of a subscribe in turn
            channel = f"{client.queue}:cancel-probe:{delay}"
            task = asyncio.create_task(subscriber.subscribe(channel))
            for _ in range(delay):
                await asyncio.sleep(0)
            asked = task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            assert done, f"subscribe did not end after a cancel {delay} steps in"
            if asked:
                assert task.cancelled(), f"a cancel {delay} steps in was swallowed"
            else:
                await subscriber.remove(task.result())
    finally:
        await subscriber.aclose()
