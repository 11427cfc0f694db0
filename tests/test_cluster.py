"""``redis+cluster://`` URLs: parsing, and the main flows on a real local Redis Cluster (3
masters, 3 replicas) with queues whose slots three different masters serve: jobs run, retry,
wait out a delay, are cancelled while running and followed through their events; a flow whose
parent lives on another master; the registry and the reads across queues; the sync client and
the faces; a worker killed with SIGKILL whose lease another takes over; a slot migrated under a
running worker; a failover of a queue's master.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from redisjobs import Client, ConnectionFailed, Event, JobFailed, Worker
from redisjobs.cluster import parse_cluster_url
from redisjobs.keys import CLUSTER_REGISTRY, QueueKeys
from redisjobs.manager import JobManager
from redisjobs.options import new_job_id
from redisjobs.partitions import partitions_of
from redisjobs.pyjobkit.backends.redis import RedisBackend
from redisjobs.sync import Client as SyncClient
from redisjobs.testing import unique_queue
from redisjobs.topologies import ClusterSetup

pytestmark = [pytest.mark.redis_only, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parent.parent
ADD = {"fn": "tests.jobs:add", "kwargs": {"a": 2, "b": 3}}


# -- URLs ------------------------------------------------------------------------------------


def test_a_cluster_url_names_its_nodes_and_credentials() -> None:
    parsed = parse_cluster_url("redis+cluster://me:p%40ss@h1:7000,h2,[::1]:7002/")
    assert parsed.nodes == (("h1", 7000), ("h2", 6379), ("::1", 7002))
    assert (parsed.username, parsed.password, parsed.tls) == ("me", "p@ss", False)
    assert parse_cluster_url("rediss+cluster://h1:7000").tls


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://h1:7000/3", "database 0 only"),
        ("redis+cluster://h1:0", "bad cluster node address"),
        ("redis+cluster://,h2", "bad cluster node address"),
        ("redis+cluster://u:secret@h1:99999", "bad cluster node address"),
        ("redis+cluster://h1?socket_timeout=1", "no query options"),
    ],
)
def test_a_bad_cluster_url_is_refused_with_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        parse_cluster_url(url)
    assert "secret" not in str(raised.value)


# -- the main flows, one queue on each master ---------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSetup]:
    with ClusterSetup() as setup:
        yield setup


@pytest.fixture
def queues(cluster: ClusterSetup) -> list[str]:
    """Three fresh queues, each served by another master."""
    return cluster.queues_on_each_master(unique_queue())


@pytest.fixture
async def client(cluster: ClusterSetup, queues: list[str]) -> AsyncIterator[Client]:
    async with Client(cluster.url, queue=queues[0]) as c:
        yield c


@pytest.fixture
async def workers(cluster: ClusterSetup, queues: list[str]) -> AsyncIterator[list[Worker]]:
    made = [
        Worker(
            cluster.url, queue=q, modules=["tests.jobs"], handle_signals=False, poll_interval=0.05
        )
        for q in queues
    ]
    for w in made:
        await w.__aenter__()
    yield made
    for w in made:
        w.stop(now=True)
        await w.__aexit__(None, None, None)


async def test_jobs_run_retry_and_wait_out_delays_on_every_master(
    cluster: ClusterSetup, client: Client, queues: list[str], workers: list[Worker]
) -> None:
    for q in queues:
        job = await client.enqueue("call", ADD, queue=q)
        assert await client.wait(job.id, timeout=10, queue=q) == 5
        home = cluster.node_of(QueueKeys(q).prefix)
        assert redis.Redis(port=home.port).exists(QueueKeys(q).job(job.id))  # where it lives
        delayed = await client.enqueue("call", ADD, queue=q, delay=0.3)
        failing = {"fn": "tests.jobs:fail"}
        retried = await client.enqueue("call", failing, queue=q, max_retries=1, retry_delay=0.05)
        assert await client.wait(delayed.id, timeout=10, queue=q) == 5
        with pytest.raises(JobFailed, match="boom"):
            await client.wait(retried.id, timeout=10, queue=q)
        got = await client.get(retried.id, queue=q)
        assert got is not None and got.attempt == 2
        types = [e.type async for e in _until_completed(client, job.id, q)]
        assert types == ["enqueued", "started", "completed"]


async def _until_completed(client: Client, job_id: str, queue: str) -> AsyncIterator[Event]:
    async for event in client.events(job_id, queue=queue, since="0"):
        yield event
        if event.type == "completed":
            return


async def test_a_running_job_is_cancelled_on_its_master_through_sharded_pub_sub(
    cluster: ClusterSetup, client: Client, queues: list[str], workers: list[Worker]
) -> None:
    """The cancel reaches the worker on the queue's control channel, published with SPUBLISH
    to the channel's shard: no node ever ran a PUBLISH (which the cluster sends to all)."""
    q = queues[2]
    job = await client.enqueue("call", {"fn": "tests.jobs:until_cancelled"}, queue=q)
    async for event in client.events(job.id, queue=q, since="0"):
        if event.type == "started":
            break
    assert await client.cancel(job.id, queue=q)
    with pytest.raises(JobFailed):
        await client.wait(job.id, timeout=10, queue=q)
    home = redis.Redis(port=cluster.node_of(QueueKeys(q).prefix).port)
    assert home.info("commandstats")["cmdstat_spublish"]["calls"] >= 1
    for node in cluster.nodes:
        assert "cmdstat_publish" not in redis.Redis(port=node.port).info("commandstats")


async def test_a_job_waits_for_a_parent_served_by_another_master(
    client: Client, queues: list[str], workers: list[Worker]
) -> None:
    # due in a second of Redis's clock: still waiting when its dependent is enqueued
    parent = await client.enqueue("call", ADD, queue=queues[1], delay=1.0)
    child = await client.enqueue("call", ADD, queue=queues[2], depends_on=[parent])
    assert await client.wait(child.id, timeout=10, queue=queues[2]) == 5
    done = await client.get(parent.id, queue=queues[1])
    assert done is not None and done.dependents == (f"{queues[2]}/{child.id}",)


async def test_the_registry_and_the_reads_across_queues(
    cluster: ClusterSetup, client: Client, queues: list[str], workers: list[Worker]
) -> None:
    jobs = [await client.enqueue("call", ADD, queue=q) for q in queues]
    for job, q in zip(jobs, queues, strict=True):
        await client.wait(job.id, timeout=10, queue=q)
    assert set(queues) <= set(await client.queues())
    assert {w.id for w in workers} <= {w.id for w in await client.workers()}
    counts = await client.job_counts(queues)
    assert [c.counts["completed"] for c in counts] == [1, 1, 1]
    rates = await client.event_rates(queues)
    assert list(rates) == queues and all(r["completed"] > 0 for r in rates.values())
    found = await client.find_job(jobs[2].id)  # no queue named: every known queue is asked
    assert found is not None and found.queue == queues[2]
    registry = cluster.node_of(CLUSTER_REGISTRY.queues)
    assert redis.Redis(port=registry.port).sismember(CLUSTER_REGISTRY.queues, queues[1])
    nodes = await client.nodes()
    assert sorted(n.role for n in nodes) == ["master"] * 3 + ["replica"] * 3
    assert {n.address for n in nodes} == {f"127.0.0.1:{s.port}" for s in cluster.nodes}


async def test_the_sync_client_and_the_faces_take_a_cluster_url(
    cluster: ClusterSetup, queues: list[str], workers: list[Worker]
) -> None:
    def sync() -> list[int]:
        with SyncClient(cluster.url, queue=queues[0]) as sc:
            ids = [(sc.enqueue("call", ADD, queue=q).id, q) for q in queues]
            return [int(sc.wait(job_id, timeout=10, queue=q)) for job_id, q in ids]

    assert await asyncio.to_thread(sync) == [5, 5, 5]
    async with JobManager(max_workers=2, url=cluster.url, queue=unique_queue()) as manager:
        job = await manager.submit(_double, args={"n": 21})
        assert await manager.wait(job.id) == 42
    backend = RedisBackend(cluster.url, queue=unique_queue())
    try:
        await backend.check_connection()
    finally:
        await backend.close()


async def _double(n: int) -> int:
    return 2 * n


# -- faults: a killed worker, a migrated slot, a failover ------------------------------------


async def test_a_killed_worker_s_job_is_taken_over_by_another(
    cluster: ClusterSetup, client: Client, queues: list[str], tmp_path: Path
) -> None:
    q = queues[1]
    argv = ["worker", "--url", cluster.url, "--queue", q, "--lease-ttl", "1"]
    argv += ["--allow-module", "tests.jobs", "--reclaim-interval", "0.5"]
    first = _spawn(argv, tmp_path / "first.err")
    try:
        job = await client.enqueue("call", {"fn": "tests.jobs:sleep", "args": [1.5]}, queue=q)
        async for event in client.events(job.id, queue=q, since="0"):
            if event.type == "started":
                break
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        async with Worker(
            cluster.url,
            queue=q,
            modules=["tests.jobs"],
            lease_ttl=1,
            reclaim_interval=0.5,
            handle_signals=False,
        ):
            assert await client.wait(job.id, timeout=20, queue=q) == "slept"
        done = await client.get(job.id, queue=q)
        assert done is not None and done.attempt == 2
    finally:
        if first.poll() is None:
            first.kill()


def _spawn(argv: list[str], err: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(err, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "redisjobs", *argv], cwd=ROOT, env=env, stderr=stderr
        )


async def test_a_worker_follows_its_queue_to_the_master_its_slot_migrates_to(
    cluster: ClusterSetup, client: Client, queues: list[str], workers: list[Worker]
) -> None:
    q = queues[0]
    keys = QueueKeys(q)
    before = await client.enqueue("call", ADD, queue=q)
    assert await client.wait(before.id, timeout=10, queue=q) == 5
    target = next(m for m in cluster.masters() if m.port != cluster.node_of(keys.prefix).port)
    await asyncio.to_thread(cluster.migrate, keys.prefix, target)
    assert cluster.node_of(keys.prefix).port == target.port
    t0 = time.monotonic()
    after = await client.enqueue("call", ADD, queue=q)
    assert await client.wait(after.id, timeout=20, queue=q) == 5
    assert time.monotonic() - t0 < 15
    assert redis.Redis(port=target.port).exists(keys.job(after.id), keys.job(before.id)) == 2


async def test_a_slot_migrated_under_a_busy_queue_loses_and_repeats_nothing(
    cluster: ClusterSetup, client: Client, queues: list[str], workers: list[Worker]
) -> None:
    """Jobs enqueued and run while the queue's slot moves, key by key, to another master: a
    call that meets the migration (ASK) waits it out, and every job runs to one outcome."""
    q = queues[1]
    keys = QueueKeys(q)
    target = next(m for m in cluster.masters() if m.port != cluster.node_of(keys.prefix).port)
    ids: list[str] = []
    resent: list[int] = []

    async def produce() -> None:
        for _ in range(30):
            batch = [{"kind": "call", "payload": ADD, "job_id": new_job_id()} for _ in range(10)]
            while True:
                try:
                    await client.enqueue_many(batch, queue=q)
                    break
                except ConnectionFailed:  # the migration (ASK, MOVED): the same ids again
                    resent.append(1)
                    await asyncio.sleep(0.05)
            ids.extend(str(job["job_id"]) for job in batch)
            await asyncio.sleep(0.02)

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.2)
    await asyncio.to_thread(cluster.migrate, keys.prefix, target, 5, 0.05)
    await asyncio.wait_for(producer, 60)
    results = await asyncio.gather(*(client.wait(i, timeout=30, queue=q) for i in ids))
    assert results == [5] * 300
    (counts,) = await client.job_counts([q])
    assert counts.totals["completed"] == 300 and counts.totals["enqueued"] == 300, counts
    assert cluster.node_of(keys.prefix).port == target.port
    assert resent, "no enqueue met the migration: it ended before the traffic"


@pytest.mark.timeout(150)
async def test_clients_and_workers_follow_a_failover_of_their_master(tmp_path: Path) -> None:
    with ClusterSetup() as setup:
        q = setup.queues_on_each_master(unique_queue())[0]
        keys = QueueKeys(q)
        async with (
            Client(setup.url, queue=q) as c,
            Worker(setup.url, queue=q, modules=["tests.jobs"], handle_signals=False),
        ):
            assert await c.wait((await c.enqueue("call", ADD)).id, timeout=10) == 5
            old = setup.node_of(keys.prefix)
            new = await asyncio.to_thread(setup.failover, old)
            assert setup.node_of(keys.prefix).port == new.port
            job = await c.enqueue("call", ADD)
            assert await c.wait(job.id, timeout=30) == 5
        assert redis.Redis(port=new.port).exists(keys.job(job.id))


async def test_a_partitioned_queue_spreads_over_the_masters(cluster: ClusterSetup) -> None:
    queue = unique_queue()
    names = partitions_of(queue, 6)
    homes = {cluster.node_of(QueueKeys(name).prefix).port for name in names}
    assert len(homes) >= 2, "6 tags all in one master's slots"
    async with (
        Client(cluster.url, queue=queue, partitions=6) as client,
        Worker(
            cluster.url, queue=queue, partitions=6, modules=["tests.jobs"], handle_signals=False
        ),
    ):
        jobs = await client.enqueue_many([("call", ADD)] * 60)
        assert await asyncio.gather(*(client.wait(j.id, timeout=20) for j in jobs)) == [5] * 60
    for name in names:  # every partition's jobs ran, each on its own master
        home = redis.Redis(port=cluster.node_of(QueueKeys(name).prefix).port)
        mine = [j for j in jobs if j.queue == name]
        assert mine and home.exists(*(QueueKeys(name).job(j.id) for j in mine)) == len(mine)


async def test_the_info_command_shows_every_node_and_its_role(
    cluster: ClusterSetup, client: Client, queues: list[str]
) -> None:
    await client.enqueue("call", ADD, queue=queues[2])
    argv = [sys.executable, "-m", "redisjobs", "info", "--url", cluster.url, "--json"]
    done = await asyncio.to_thread(
        subprocess.run, argv, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert sorted(n["role"] for n in info["nodes"]) == ["master"] * 3 + ["replica"] * 3
    assert info["queues"][queues[2]]["pending"] == 1, info["queues"][queues[2]]
