"""``redis+sentinel://`` URLs: parsing, the main flows through a real Sentinel setup (a master,
a replica, 3 sentinels), connections that follow the master, and durable writes (WAIT).

The failovers in the middle of thousands of jobs, with workers in processes of their own, are
fault scenarios: tests/faults/test_sentinel.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis

from redisjobs import Client, ConnectionFailed, JobFailed, Worker
from redisjobs.durability import Durability
from redisjobs.errors import NotReplicated
from redisjobs.keys import QueueKeys
from redisjobs.manager import JobManager
from redisjobs.pyjobkit.backends.redis import RedisBackend
from redisjobs.sentinel import parse_sentinel_url
from redisjobs.sync import Client as SyncClient
from redisjobs.testing import RedisServer, unique_queue
from redisjobs.topologies import SentinelSetup

pytestmark = [pytest.mark.redis_only, pytest.mark.timeout(60)]

ADD = {"fn": "tests.jobs:add", "kwargs": {"a": 2, "b": 3}}


# -- URLs ------------------------------------------------------------------------------------


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_master_s_credentials() -> None:
    url = "redis+sentinel://me:p%40ss@h1:26380,h2,[::1]:5000/cache/3?sentinel_password=s"
    parsed = parse_sentinel_url(url)
    assert parsed.sentinels == (("h1", 26380), ("h2", 26379), ("::1", 5000))
    assert (parsed.service, parsed.db, parsed.username, parsed.password) == (
        "cache",
        3,
        "me",
        "p@ss",
    )
    assert parsed.sentinel_password == "s" and not parsed.tls
    assert parse_sentinel_url("rediss+sentinel://h/m").tls


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h1:26379/", "names its service"),
        ("redis+sentinel://h1/a/b/c", "names its service"),
        ("redis+sentinel://h1:0/m", "bad sentinel address"),
        ("redis+sentinel://h1:x/m", "bad sentinel address"),
        ("redis+sentinel://,h2/m", "bad sentinel address"),
        ("redis+sentinel://h1/m/x", "bad database"),
        ("redis+sentinel://h1/m?socket_timeout=1", "unknown sentinel URL option"),
    ],
)
def test_a_bad_sentinel_url_is_refused_with_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_sentinel_url(url)


def test_a_bad_url_never_shows_its_password() -> None:
    with pytest.raises(ValueError) as raised:
        parse_sentinel_url("redis+sentinel://u:secret@h1:99999/m")
    assert "secret" not in str(raised.value)


# -- the main flows through the sentinels -----------------------------------------------------


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelSetup]:
    with SentinelSetup() as setup:
        yield setup


@pytest.fixture
async def client(sentinel: SentinelSetup) -> AsyncIterator[Client]:
    async with Client(sentinel.url, queue=unique_queue()) as c:
        yield c


@pytest.fixture
async def worker(sentinel: SentinelSetup, client: Client) -> AsyncIterator[Worker]:
    w = Worker(sentinel.url, queue=client.queue, modules=["tests.jobs"], handle_signals=False)
    async with w:
        yield w


async def test_jobs_run_through_the_sentinels(client: Client, worker: Worker) -> None:
    job = await client.enqueue("call", ADD)
    assert await client.wait(job.id, timeout=10) == 5
    delayed = await client.enqueue("call", ADD, delay=0.3)
    retried = await client.enqueue(
        "call", {"fn": "tests.jobs:fail"}, max_retries=1, retry_delay=0.05
    )
    assert await client.wait(delayed.id, timeout=10) == 5
    with pytest.raises(JobFailed, match="boom"):
        await client.wait(retried.id, timeout=10)
    got = await client.get(retried.id)
    assert got is not None and got.attempt == 2
    assert await _types_until_completed(client, job.id) == ["enqueued", "started", "completed"]


async def test_a_running_job_is_cancelled_through_the_sentinels(
    client: Client, worker: Worker
) -> None:
    job = await client.enqueue("call", {"fn": "tests.jobs:until_cancelled"})
    async for event in client.events(job.id, since="0"):  # from the start: it may be running
        if event.type == "started":
            break
    assert await client.cancel(job.id)
    with pytest.raises(JobFailed):
        await client.wait(job.id, timeout=10)


async def test_the_sync_client_and_the_faces_take_a_sentinel_url(
    sentinel: SentinelSetup, client: Client, worker: Worker
) -> None:
    def sync() -> int:
        with SyncClient(sentinel.url, queue=client.queue) as sc:
            return int(sc.wait(sc.enqueue("call", ADD).id, timeout=10))

    assert await asyncio.to_thread(sync) == 5
    async with JobManager(max_workers=2, url=sentinel.url, queue=unique_queue()) as manager:
        job = await manager.submit(_double, args={"n": 21})
        assert await manager.wait(job.id) == 42
    backend = RedisBackend(sentinel.url, queue=unique_queue())
    try:
        await backend.check_connection()  # raises when the store cannot be reached
    finally:
        await backend.close()


async def _types_until_completed(client: Client, job_id: str) -> list[str]:
    types = []
    async for event in client.events(job_id, since="0"):
        types.append(event.type)
        if event.type == "completed":
            return types
    raise AssertionError("the events ended")


async def _double(n: int) -> int:
    return 2 * n


async def test_a_demoted_master_breaks_the_connection_rather_than_failing_every_call(
    sentinel: SentinelSetup, client: Client
) -> None:
    """A master demoted behind the sentinels' back answers READONLY: the script channel takes
    that as a lost connection, asks the sentinels again, and (as they still name it) fails
    with ConnectionFailed saying why; once it is the master again, calls go through."""
    await client.enqueue("call", ADD)
    master = sentinel.current_master()
    node = redis.Redis(port=master.port)
    other = next(n for n in sentinel.nodes if n is not master)
    node.replicaof("127.0.0.1", str(other.port))
    try:
        with pytest.raises(ConnectionFailed, match="demoted by a failover"):
            await client.enqueue("call", ADD)
    finally:
        node.replicaof("NO", "ONE")
    await client.enqueue("call", ADD)


@pytest.mark.timeout(150)  # the sentinels' own pace, loaded machine (see wait_settled)
async def test_clients_follow_the_master_through_a_sentinel_failover() -> None:
    with SentinelSetup() as setup:
        async with Client(setup.url, queue=unique_queue()) as c:
            await c.enqueue("call", ADD)
            with SyncClient(setup.url, queue=c.queue) as sc:
                sc.enqueue("call", ADD)
                old = setup.current_master()
                setup.failover()
                new = await asyncio.to_thread(setup.wait_settled, not_on=old)
                assert new is not old
                # the old master is the new one's replica now: both clients write to the new
                a, b = await c.enqueue("call", ADD), sc.enqueue("call", ADD)
        keys = QueueKeys(c.queue)
        assert redis.Redis(port=new.port).exists(keys.job(a.id), keys.job(b.id)) == 2


# -- durable writes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and its replica (plain redis:// URLs)."""
    fast = ["--repl-diskless-sync-delay", "0"]
    master = RedisServer(args=fast)
    replica = RedisServer(args=[*fast, "--replicaof", "127.0.0.1", str(master.port)])
    with master, replica:
        _wait_synced(replica)
        yield master, replica


def _wait_synced(replica: RedisServer) -> None:
    r = redis.Redis(port=replica.port, decode_responses=True)
    deadline = time.monotonic() + 20
    while r.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica did not sync"
        time.sleep(0.05)


async def test_a_durable_enqueue_returns_once_the_replica_has_the_job(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair
    async with Client(master.url, queue=unique_queue(), durable=True) as c:
        jobs = [await c.enqueue("call", ADD) for _ in range(20)]
        jobs += await c.enqueue_many([("call", ADD)] * 250)  # three batches, each waited on
        keys = QueueKeys(c.queue)
        on_replica = redis.Redis(port=replica.port)
        # read at once, no polling: WAIT returned only after the replica acknowledged them
        assert on_replica.exists(*(keys.job(j.id) for j in jobs)) == 270

    def sync() -> str:
        with SyncClient(master.url, queue=c.queue, durable=True) as sc:
            return sc.enqueue("call", ADD).id

    assert on_replica.exists(keys.job(await asyncio.to_thread(sync))) == 1


async def test_a_durable_write_without_enough_replicas_raises_not_replicated_in_time(
    pair: tuple[RedisServer, RedisServer], redis_url: str
) -> None:
    master, _ = pair
    wanted = Durability(replicas=2, timeout=0.2)  # one replica exists
    async with Client(master.url, queue=unique_queue(), durable=wanted) as c:
        t0 = time.monotonic()
        with pytest.raises(NotReplicated, match="1 of 2 replica"):
            await c.enqueue("call", ADD, job_id="once")
        assert 0.15 < time.monotonic() - t0 < 2.0
        # it was written: sending it again is a dedup hit, and still waits for the replicas
        with pytest.raises(NotReplicated):
            await c.enqueue("call", ADD, job_id="once")
        assert (await c.get("once")) is not None

    def sync() -> None:
        with SyncClient(redis_url, queue=unique_queue(), durable=Durability(timeout=0.1)) as sc:
            sc.enqueue("call", ADD)

    with pytest.raises(NotReplicated, match="0 of 1"):  # the session's Redis has no replica
        await asyncio.to_thread(sync)


def test_durable_on_the_embedded_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="memory:// has none"):
        Client("memory://", durable=True)
    with pytest.raises(ValueError, match="replicas >= 1"):
        Durability(replicas=0)


async def test_a_durable_worker_sends_an_outcome_again_until_a_replica_has_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With no replica, the outcome reaches the master but is not confirmed: the worker sends
    it again (a re-sent outcome writes nothing twice) until a replica syncs and confirms it."""
    caplog.set_level(logging.INFO, "redisjobs")
    fast = ["--repl-diskless-sync-delay", "0"]
    with RedisServer(args=fast) as master:
        queue, r = unique_queue(), redis.Redis(port=master.port)
        async with Client(master.url, queue=queue) as c:
            job = await c.enqueue("call", ADD)
            w = Worker(
                master.url,
                queue=queue,
                modules=["tests.jobs"],
                handle_signals=False,
                durable=Durability(timeout=0.1),
            )
            async with w:
                await _until(lambda: _waits(r) >= 3, "the outcome to be sent three times")
                args = [*fast, "--replicaof", "127.0.0.1", str(master.port)]
                with RedisServer(args=args):
                    await _until(lambda: "is back after" in caplog.text, "the outcome confirmed")
                    sent = _waits(r)
                    await asyncio.sleep(0.5)
                    assert _waits(r) == sent  # confirmed: not sent again
            assert await c.wait(job.id, timeout=5) == 5
            assert (await _types_until_completed(c, job.id)).count("completed") == 1


def _waits(r: redis.Redis) -> int:
    """WAIT commands the server has run."""
    stats = r.info("commandstats").get("cmdstat_wait", {})
    return int(stats.get("calls", 0))


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
