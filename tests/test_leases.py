"""The lease loops alone, on a real redis-server: heartbeats keep a held job's lease and carry
cancel requests, a worker that cannot reach Redis fences itself, and reclaim takes over the jobs
of a dead holder, as many as the slots have room for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from redisjobs import Client, JobStatus
from redisjobs.connection import Backend, ensure_group
from redisjobs.keys import GROUP, REGISTRY, QueueKeys
from redisjobs.leases import Leases
from redisjobs.presence import Presence
from redisjobs.scripts import Delivery, Scripts
from redisjobs.slots import Slots
from redisjobs.testing import closed_port

pytestmark = pytest.mark.redis_only


class Holder:
    """The worker side of the lease loops: the jobs it holds, and what the loops told it."""

    hung_threads = 0

    def __init__(self) -> None:
        self.held: dict[str, int] = {}
        self.stopped: list[tuple[str, str]] = []
        self.launched: list[Delivery] = []

    def held_leases(self) -> list[tuple[str, int]]:
        return list(self.held.items())

    def stop_job(self, job_id: str, reason: str) -> None:
        self.stopped.append((job_id, reason))
        self.held.pop(job_id, None)

    def launch(self, delivery: Delivery) -> None:
        self.launched.append(delivery)
        self.held[delivery.job_id] = delivery.lease


LeasesFactory = Callable[..., Leases]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Backend(redis_url).client(retries=0)
    yield client
    await client.aclose()


@pytest.fixture
def leases(redis: Redis, queue: str) -> LeasesFactory:
    def make(
        holder: Holder,
        worker_id: str,
        *,
        lease_ttl: float = 1.0,
        slots: Slots | None = None,
        beat_redis: Redis | None = None,
    ) -> Leases:
        scripts = Scripts(redis)
        return Leases(
            holder,
            slots or Slots(10, 10),
            worker_id=worker_id,
            redis=redis,
            # a worker cut off from Redis reaches neither its beats' client nor the registry
            registry=(beat_redis or redis, REGISTRY),
            scripts=scripts,
            beat_scripts=Scripts(beat_redis) if beat_redis is not None else scripts,
            keys=QueueKeys(queue),
            lease_ttl=lease_ttl,
            max_deliveries=5,
            reclaim_interval=60,
            concurrency=10,
            lost_reply=lambda: None,
            presence=Presence(),
        )

    return make


async def lease_one(client: Client, redis: Redis, holder: Holder, worker_id: str) -> Delivery:
    """Enqueue a job and lease it to `worker_id`, as its fetcher would."""
    keys = client.keys()
    await ensure_group(redis, keys)
    job = await client.enqueue("call", {"fn": "add"})
    [delivery] = await Scripts(redis).start(keys, worker_id, read=1)
    assert delivery.job_id == job.id
    holder.launch(delivery)
    return delivery


async def idle_ms(redis: Redis, keys: QueueKeys, worker_id: str) -> int:
    pending: Any = await redis.xpending_range(keys.ready, GROUP, "-", "+", 1, worker_id)
    return int(pending[0]["time_since_delivered"])


@contextlib.asynccontextmanager
async def beating(leases: Leases) -> AsyncIterator[None]:
    task = asyncio.create_task(leases.heartbeat_loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate: Callable[[], Awaitable[bool] | bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while True:
            done = predicate()
            if done if isinstance(done, bool) else await done:
                return
            await asyncio.sleep(0.02)


async def test_heartbeats_keep_a_lease_past_its_ttl(
    client: Client, redis: Redis, leases: LeasesFactory
) -> None:
    holder = Holder()
    alive = leases(holder, "alive", lease_ttl=0.6)
    await alive.register([])
    delivery = await lease_one(client, redis, holder, "alive")
    async with beating(alive):
        await asyncio.sleep(1.5)  # more than two lease TTLs
        assert await idle_ms(redis, client.keys(), "alive") < 600
        assert alive.last_contact is not None
        thief = leases(Holder(), "thief", lease_ttl=0.6)
        assert await thief.reclaim_once() == 0  # nothing is up for reclaim
    assert holder.stopped == []
    job = await client.get(delivery.job_id)
    assert job is not None and job.status is JobStatus.RUNNING and job.attempt == 1


async def test_a_heartbeat_carries_a_cancel_request(
    client: Client, redis: Redis, leases: LeasesFactory
) -> None:
    holder = Holder()
    alive = leases(holder, "alive", lease_ttl=0.6)
    delivery = await lease_one(client, redis, holder, "alive")
    async with beating(alive):
        assert await client.cancel(delivery.job_id)
        await until(lambda: bool(holder.stopped), 3)
    assert holder.stopped == [(delivery.job_id, "cancel")]


async def test_a_worker_that_cannot_reach_redis_fences_itself(
    client: Client, redis: Redis, leases: LeasesFactory
) -> None:
    holder = Holder()
    with closed_port() as port:
        nowhere = Backend(f"redis://127.0.0.1:{port}").client(retries=0)
        cut_off = leases(holder, "cut-off", lease_ttl=2.0, beat_redis=nowhere)
        delivery = await lease_one(client, redis, holder, "cut-off")
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with beating(cut_off):
            await until(lambda: bool(holder.stopped), 5)
            fenced = loop.time() - started
        await nowhere.aclose()
    assert holder.stopped == [(delivery.job_id, "lost")]
    assert 1.8 <= fenced < 2.0  # before the lease can expire on Redis, not after
    assert cut_off.last_contact is None


async def test_reclaim_takes_over_a_dead_holders_jobs(
    client: Client, redis: Redis, leases: LeasesFactory
) -> None:
    dead_holder = Holder()
    dead = leases(dead_holder, "dead", lease_ttl=0.3)
    await dead.register([])  # its lease_ttl, by which the others judge its silence
    first = await lease_one(client, redis, dead_holder, "dead")
    second = await lease_one(client, redis, dead_holder, "dead")
    await asyncio.sleep(0.5)  # no heartbeat: both leases ran out
    slots = Slots(1, 1)
    heir = Holder()
    alive = leases(heir, "alive", lease_ttl=5, slots=slots)
    assert await alive.reclaim_once() == 1  # one free slot, one job
    assert alive.owed  # and the next free slot is owed to the other
    assert [d.job_id for d in heir.launched] == [first.job_id]
    assert heir.launched[0].attempt == 2 and heir.launched[0].lease > first.lease
    slots.take()
    assert await alive.reclaim_once() == 0  # no free slot: nothing taken
    slots.release()
    assert await alive.reclaim_once() == 1
    assert [d.job_id for d in heir.launched] == [first.job_id, second.job_id]
    assert not alive.owed
    job = await client.get(second.job_id)
    assert job is not None and job.status is JobStatus.RUNNING and job.worker == "alive"
