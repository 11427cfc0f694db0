"""Partitioned queues: one queue spread over N partitions by job id (or by partition key),
found again by id, served fairly by one worker; on a cluster, the partitions of one queue on
several masters."""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter

import pytest

from redisjobs import Client
from redisjobs.arbiter import queue_order
from redisjobs.cli.parser import build
from redisjobs.cli.serve import make_workers, plan
from redisjobs.keys import QueueKeys
from redisjobs.partitions import MAX_PARTITIONS, index_of, partitions_of
from redisjobs.sync import Client as SyncClient
from redisjobs.testing import unique_queue
from tests.conftest import WorkerFactory
from tests.test_cli import cli

ADD = {"fn": "tests.jobs:add", "kwargs": {"a": 2, "b": 3}}


# -- names, hashing, the worker's order ---------------------------------------------------------


def test_a_job_s_partition_is_the_crc32_of_its_id_modulo_the_count() -> None:
    assert partitions_of("emails", 3) == ["emails:p0", "emails:p1", "emails:p2"]
    assert partitions_of("emails", 1) == ["emails"]
    assert index_of("job-1", 7) == zlib.crc32(b"job-1") % 7


@pytest.mark.parametrize("bad", [0, -1, MAX_PARTITIONS + 1, 2.5, True, "4"])
def test_a_bad_count_of_partitions_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="partitions must be an integer"):
        Client("memory://", queue="q", partitions=bad)  # type: ignore[arg-type]


def test_a_worker_serves_each_partition_with_an_equal_share_of_its_queue_s() -> None:
    assert queue_order("q", None, None, 3) == {"q:p0": 1, "q:p1": 1, "q:p2": 1}
    # weights scaled so that the partitioned queue keeps its 2:1 against the other
    order = queue_order(None, {"a": 2, "b": 1}, None, {"a": 2})
    assert order == {"a:p0": 2, "a:p1": 2, "b": 2}
    with pytest.raises(ValueError, match="give them weights"):
        queue_order(None, ["a", "b"], None, {"a": 2})


# -- producing and finding jobs -------------------------------------------------------------------


async def test_jobs_spread_over_the_partitions_and_are_found_by_id(url: str) -> None:
    queue = unique_queue()
    async with Client(url, queue=queue, partitions=4) as client:
        jobs = await client.enqueue_many([("call", ADD)] * 200)
        spread = Counter(job.queue for job in jobs)
        assert set(spread) == set(partitions_of(queue, 4))
        assert min(spread.values()) > 20  # 200 ids, crc32-spread: far from empty
        for job in jobs[:10]:
            assert job.queue == f"{queue}:p{index_of(job.id, 4)}"
            found = await client.get(job.id)  # no partition named: the id says which
            assert found is not None and found.id == job.id and found.queue == job.queue
        one = await client.enqueue("call", ADD)
        assert await client.cancel(one.id)
        cancelled = await client.get(one.id)
        assert cancelled is not None and cancelled.status.value == "cancelled"


async def test_a_partition_key_keeps_its_jobs_in_one_partition_in_order(url: str) -> None:
    queue = unique_queue()
    async with Client(url, queue=queue, partitions=5) as client:
        ordered = [await client.enqueue("call", ADD, partition_key="user-7") for _ in range(20)]
        assert {job.queue for job in ordered} == {f"{queue}:p{index_of('user-7', 5)}"}
        listed = await client.list_jobs("pending", queue=ordered[0].queue, limit=50)
        assert [j.id for j in listed.jobs] == [j.id for j in reversed(ordered)]  # newest first
        many = await client.enqueue_many(
            [{"kind": "call", "payload": ADD, "partition_key": "user-8"}] * 5
        )
        assert {job.queue for job in many} == {f"{queue}:p{index_of('user-8', 5)}"}
        other = next(
            i for i in ("a", "b", "c", "d", "e", "f") if index_of(i, 5) != index_of("k", 5)
        )
        with pytest.raises(ValueError, match="different partitions"):
            await client.enqueue("call", ADD, job_id=other, partition_key="k")


async def test_one_worker_serves_every_partition_and_waits_find_their_jobs(
    url: str, worker: WorkerFactory
) -> None:
    queue = unique_queue()
    async with Client(url, queue=queue, partitions=3) as client:
        await worker(queue=None, queues=[queue], partitions=3, modules=["tests.jobs"])
        jobs = await client.enqueue_many([("call", ADD)] * 30)
        results = await asyncio.gather(*(client.wait(job.id, timeout=10) for job in jobs))
        assert results == [5] * 30
        assert len({job.queue for job in jobs}) == 3


async def test_the_partitions_share_the_worker_s_slots_evenly(
    url: str, worker: WorkerFactory
) -> None:
    """A backlog in every partition, one slot: the worker takes them in turn, so none waits
    for another's backlog to drain."""
    queue = unique_queue()
    async with Client(url, queue=queue, partitions=3) as client:
        keys = list({index_of(f"k{n}", 3): f"k{n}" for n in range(50)}.values())  # one each
        jobs = await client.enqueue_many(
            [{"kind": "call", "payload": ADD, "partition_key": keys[i % 3]} for i in range(30)]
        )
        await worker(queue=queue, partitions=3, modules=["tests.jobs"], concurrency=1)
        for job in jobs:
            await client.wait(job.id, timeout=20)
        done = sorted(
            [(await client.get(job.id)) for job in jobs],
            key=lambda j: j.completed_at or 0,  # type: ignore[union-attr]
        )
        first = Counter(j.queue for j in done[:12] if j is not None)
        assert len(first) == 3 and min(first.values()) >= 3, first


def test_the_sync_client_spreads_and_finds_jobs_the_same_way(url: str) -> None:
    queue = unique_queue()
    with SyncClient(url, queue=queue, partitions=4) as client:
        jobs = client.enqueue_many([("call", ADD)] * 40)
        assert len({job.queue for job in jobs}) == 4
        keyed = client.enqueue("call", ADD, partition_key="user-7")
        assert keyed.queue == f"{queue}:p{index_of('user-7', 4)}"
        got = client.get(jobs[3].id)
        assert got is not None and got.queue == jobs[3].queue
        assert QueueKeys(got.queue).queue == got.queue


def test_the_worker_command_serves_every_partition_of_its_queues() -> None:
    args = build().parse_args(["worker", "--redis", "memory://", "-q", "a:2", "-q", "b"])
    args_partitioned = build().parse_args(
        ["worker", "--redis", "memory://", "-q", "mail", "--partitions", "3"]
    )
    (plain,) = make_workers(args, plan(args))
    (partitioned,) = make_workers(args_partitioned, plan(args_partitioned))
    assert [s.keys.queue for s in (plain, *plain._siblings.workers)] == ["a", "b"]
    served = [w.keys.queue for w in (partitioned, *partitioned._siblings.workers)]
    assert served == partitions_of("mail", 3)
    refused = cli("worker", "--redis", "memory://", "--partitions", "0")
    assert refused.returncode == 2 and "--partitions" in refused.stderr, refused.stderr


async def test_pausing_a_partitioned_queue_pauses_every_partition(url: str) -> None:
    queue = unique_queue()
    async with Client(url, queue=queue, partitions=3) as client:
        job = await client.enqueue("call", ADD)
        assert await client.pause() and await client.is_paused()
        assert all([await client.is_paused(name) for name in partitions_of(queue, 3)])
        found = await client.find_job(job.id, queue=queue)  # the id names the partition
        assert found is not None and found.queue == job.queue
        assert await client.resume() and not await client.is_paused()
        assert not any([await client.is_paused(name) for name in partitions_of(queue, 3)])
    with SyncClient(url, queue=queue, partitions=3) as sync:
        assert sync.pause() and sync.is_paused() and not sync.pause()
        assert sync.resume() and not sync.is_paused()
