"""The fetcher alone, on real Redis and the embedded backend: it leases no more jobs than the
worker's slots have room for, looks again when a slot frees or work arrives, and ends once the
slots are closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from redisjobs import Client
from redisjobs.connection import Backend, ensure_group
from redisjobs.fetcher import BLOCK_MS, Fetcher
from redisjobs.keys import QueueKeys
from redisjobs.scripts import Delivery, Scripts
from redisjobs.slots import Slots


@dataclass
class Fed:
    """A fetcher running against the test's queue, and the jobs it launched."""

    slots: Slots
    backend: Backend
    launched: list[Delivery] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def launch(self, delivery: Delivery) -> None:
        self.slots.take()
        self.launched.append(delivery)


FetcherFactory = Callable[..., Awaitable[Fed]]


@pytest.fixture
async def fetcher(url: str, queue: str) -> AsyncIterator[FetcherFactory]:
    """Starts fetchers with the given slots; stops them at the end."""
    running: list[Fed] = []
    backend = Backend(url)
    redis = backend.client(retries=0)
    keys = QueueKeys(queue)

    async def make(*, concurrency: int, batch_size: int, poll_interval: float = 0.05) -> Fed:
        await ensure_group(redis, keys)
        fed = Fed(Slots(concurrency, batch_size), backend)
        fetcher = Fetcher(
            redis,
            Scripts(redis, embedded=backend.embedded),
            keys,
            "fetcher-test",
            can_block=backend.can_block,
            poll_interval=poll_interval,
            slots=fed.slots,
            launch=fed.launch,
        )
        if backend.embedded:
            backend.add_waker(queue, fed.slots.wake)
        fed.task = asyncio.create_task(fetcher.run())
        running.append(fed)
        return fed

    yield make
    for fed in running:
        fed.slots.close()
        assert fed.task is not None
        fed.task.cancel()
        backend.remove_waker(queue, fed.slots.wake)
    await redis.aclose()


async def settled(fed: Fed, count: int) -> None:
    async with asyncio.timeout(3):
        while len(fed.launched) < count:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # and no more come


async def test_it_leases_only_what_the_slots_hold(client: Client, fetcher: FetcherFactory) -> None:
    many = await client.enqueue_many([("call", {"fn": "add"})] * 10)
    fed = await fetcher(concurrency=3, batch_size=3)
    await settled(fed, 3)
    assert len(fed.launched) == 3 and fed.slots.free() == 0
    assert [d.job_id for d in fed.launched] == [j.id for j in many[:3]]  # in order
    fed.slots.release()  # a job ended: the fetcher looks again at once
    await settled(fed, 4)
    assert len(fed.launched) == 4
    assert {d.attempt for d in fed.launched} == {1}


async def test_batch_size_caps_each_fetch_not_the_slots(
    client: Client, fetcher: FetcherFactory
) -> None:
    await client.enqueue_many([("call", {"fn": "add"})] * 6)
    fed = await fetcher(concurrency=4, batch_size=1)
    await settled(fed, 4)
    assert len(fed.launched) == 4


async def test_work_enqueued_later_is_fetched_soon(client: Client, fetcher: FetcherFactory) -> None:
    # A long poll: on the embedded backend only the enqueue's wake-up can make this quick.
    fed = await fetcher(concurrency=2, batch_size=2, poll_interval=30)
    await asyncio.sleep(0.2)
    job = await client.enqueue("call", {"fn": "add"})
    await settled(fed, 1)
    assert [d.job_id for d in fed.launched] == [job.id]


async def test_closing_the_slots_ends_it(fetcher: FetcherFactory) -> None:
    fed = await fetcher(concurrency=2, batch_size=2, poll_interval=30)
    await asyncio.sleep(0.1)
    fed.slots.close()
    assert fed.slots.free() == 0
    # Polling, it wakes at once; blocked in XREADGROUP, it ends when the read returns (a
    # stopping worker cancels that read instead).
    assert fed.task is not None
    await asyncio.wait_for(asyncio.shield(fed.task), BLOCK_MS / 1000 + 1)
    assert fed.launched == []
