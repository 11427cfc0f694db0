"""redisjobs.sync.Client: the producer calls for sync code, shared by threads, on a real
redis-server (and the embedded backend), with real workers running in a thread's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from redisjobs import (
    CallRefused,
    ConnectionFailed,
    InvalidJobId,
    JobCancelled,
    JobFailed,
    JobNotFound,
    JobPage,
    JobStatus,
    PayloadTooLarge,
    RedisOutOfMemory,
    SerializationError,
    WaitTimeout,
    Worker,
)
from redisjobs import Client as AsyncClient
from redisjobs.connection import COMMAND_TIMEOUT, CONNECT_TIMEOUT
from redisjobs.eventlog import BLOCK_MS, NAME
from redisjobs.sync import Client
from redisjobs.sync.listener import DOWN_LIMIT
from redisjobs.testing import RedisServer, closed_port
from tests import jobs

pytestmark = pytest.mark.timeout(120)

FUNCTIONS: list[Callable[..., Any]] = [jobs.add, jobs.fail, jobs.sleep]


def add(a: int, b: int) -> dict[str, Any]:
    return {"fn": "add", "args": {"a": a, "b": b}}


@contextlib.contextmanager
def worker_thread(url: str, queue: str, **kwargs: Any) -> Iterator[None]:
    """A real Worker of `queue`, running in its own thread's event loop until the block ends."""
    ready, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        async with Worker(
            url,
            queue=queue,
            functions=FUNCTIONS,
            handle_signals=False,
            poll_interval=0.05,
            **kwargs,
        ) as worker:
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)
            worker.stop(now=True)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(15), "the worker did not start"
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture
def sync_client(url: str, queue: str) -> Iterator[Client]:
    with Client(url, queue=queue) as client:
        yield client


def test_every_call_against_a_real_worker(url: str, queue: str, sync_client: Client) -> None:
    client = sync_client
    client.ping()
    with worker_thread(url, queue):
        job = client.enqueue("call", add(1, 2))
        assert job.status == JobStatus.PENDING and job.queue == queue
        assert client.wait(job.id, timeout=10) == 3
        done = client.get(job.id)
        assert done is not None and done.status == JobStatus.COMPLETED and done.result == 3
        many = client.enqueue_many([("call", add(i, 1)) for i in range(250)])
        assert [client.wait(j.id, timeout=10) for j in many] == [i + 1 for i in range(250)]
        failing = client.enqueue("call", {"fn": "fail", "args": {"message": "nope"}})
        with pytest.raises(JobFailed, match="nope"):
            client.wait(failing.id, timeout=10)
    page = client.list_jobs(JobStatus.COMPLETED, limit=10)
    assert isinstance(page, JobPage) and len(page.jobs) == 10 and page.cursor == 10
    assert client.list_jobs("failed").jobs[0].id == failing.id
    stats = client.stats()
    assert (stats["enqueued"], stats["completed"], stats["failed"]) == (252, 251, 1)
    assert client.get("no-such-job") is None


def test_enqueue_options_duplicates_and_cancel(sync_client: Client) -> None:
    client = sync_client
    job = client.enqueue("greet", {"x": 1}, job_id="mine", delay=60, priority=3, max_retries=2)
    assert (job.id, job.status, job.priority) == ("mine", JobStatus.SCHEDULED, 3)
    stored = client.get("mine")
    assert stored is not None and stored.max_retries == 2 and stored.priority == 3
    again = client.enqueue("greet", {"x": 2}, job_id="mine")
    assert again.status == JobStatus.SCHEDULED and again.payload == {"x": 1}  # the stored one
    assert client.stats()["scheduled"] == 1
    assert client.cancel("mine") is True
    assert client.cancel("mine") is False  # already final
    assert client.cancel("no-such-job") is False
    with pytest.raises(JobCancelled):
        client.wait("mine", timeout=5)
    with pytest.raises(TypeError, match="unknown enqueue option"):
        client.enqueue("greet", None, colour="red")  # type: ignore[call-arg]


def test_unique_jobs_and_idempotency_markers(sync_client: Client) -> None:
    client = sync_client
    first = client.enqueue("greet", {"x": 1}, unique="until_done", delay=60)
    again = client.enqueue("greet", {"x": 1}, unique="until_done", delay=60)
    assert again.duplicate and again.id == first.id and not first.duplicate
    opts: dict[str, Any] = {"delay": 60, "idempotency_ttl": 60, "result_ttl": 0.1}
    kept = client.enqueue("greet", None, job_id="idem-1", **opts)
    assert client.cancel(kept.id)
    time.sleep(0.2)
    assert client.get("idem-1") is None  # the marker answers once the hash is gone
    dup = client.enqueue("greet", None, job_id="idem-1", idempotency_ttl=60)
    assert dup.duplicate and dup.status == JobStatus.CANCELLED


def test_bad_input_is_refused_before_anything_is_written(url: str, queue: str) -> None:
    with Client(url, queue=queue, max_payload_bytes=100) as client:
        for call in (client.get, client.cancel, client.wait):
            with pytest.raises(InvalidJobId):
                call("victim:log")
        with pytest.raises(InvalidJobId):
            client.enqueue("greet", None, job_id="a:b")
        with pytest.raises(CallRefused):
            client.enqueue("call", {"fn": "_private"})
        with pytest.raises(SerializationError):
            client.enqueue("greet", object())
        with pytest.raises(PayloadTooLarge):
            client.enqueue_many([("greet", 1), ("greet", "x" * 200)])
        assert client.stats()["enqueued"] == 0
        with pytest.raises(JobNotFound):
            client.wait("never-enqueued", timeout=5)


def test_wait_times_out_and_sees_a_job_that_ended_before_it(url: str, sync_client: Client) -> None:
    client = sync_client
    job = client.enqueue("call", add(2, 2))
    started = time.monotonic()
    with pytest.raises(WaitTimeout):  # no worker yet
        client.wait(job.id, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 2.5
    with worker_thread(url, client.queue):
        deadline = time.monotonic() + 10
        while (found := client.get(job.id)) is None or found.status != JobStatus.COMPLETED:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert client.wait(job.id, timeout=1) == 4  # no event will come: the state says it


def test_the_sync_client_and_an_async_worker_share_a_memory_store(queue: str) -> None:
    url = "memory://shared-with-a-thread"
    with worker_thread(url, queue), Client(url, queue=queue) as client:
        assert client.wait(client.enqueue("call", add(5, 5)).id, timeout=10) == 10

    async def read() -> Any:
        async with AsyncClient(url, queue=queue) as other:
            return await other.stats()

    assert asyncio.run(read())["completed"] == 1


def log_connections(url: str) -> int:
    """The connections reading event logs of `url` (the sync client's: the worker reads none),
    by name."""
    with redis.Redis.from_url(url) as admin:
        return sum(c["name"] == NAME for c in admin.client_list())


def test_thirty_two_threads_share_one_log_reader(url: str, queue: str) -> None:
    total = 10_000 if url.startswith("redis") else 640
    threads = 32
    seen: list[int] = []
    stop = threading.Event()

    def count() -> None:  # how many log readers, while the threads wait
        while not stop.wait(0.2):
            seen.append(log_connections(url))

    with worker_thread(url, queue, concurrency=200), Client(url, queue=queue) as client:

        def produce(n: int) -> list[Any]:
            out = []
            for i in range(n * total // threads, (n + 1) * total // threads):
                out.append(client.wait(client.enqueue("call", add(i, i)).id, timeout=60))
            return out

        counter = threading.Thread(target=count, daemon=True)
        if url.startswith("redis"):
            counter.start()
        with ThreadPoolExecutor(threads) as pool:
            results = [r for part in pool.map(produce, range(threads)) for r in part]
        stop.set()
        if counter.is_alive():
            counter.join()
    assert results == [2 * i for i in range(total)]
    if url.startswith("redis"):
        assert seen and set(seen) == {1}, seen


@pytest.mark.redis_only
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_waits_on_its_own_connections(url: str, queue: str) -> None:
    with worker_thread(url, queue), Client(url, queue=queue) as client:
        assert client.wait(client.enqueue("call", add(1, 1)).id, timeout=10) == 2  # the reader runs
        child = os.fork()
        if child == 0:  # the child: no reader thread came along; it must make its own
            ok = False
            try:
                ok = client.wait(client.enqueue("call", add(2, 2)).id, timeout=10) == 4
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert client.wait(client.enqueue("call", add(3, 3)).id, timeout=10) == 6


def test_connection_failed_names_the_masked_url() -> None:
    with closed_port() as port, Client(f"redis://user:secret@127.0.0.1:{port}/0") as client:
        started = time.monotonic()
        calls: list[Callable[[], object]] = [
            client.ping,
            lambda: client.enqueue("greet", 1),
            lambda: client.get("x"),
        ]
        for call in calls:
            with pytest.raises(ConnectionFailed, match=r"user:\*\*\*@127\.0\.0\.1") as info:
                call()
            assert "secret" not in str(info.value)
        with pytest.raises(ConnectionFailed):
            client.wait("x", timeout=30)
        assert time.monotonic() - started < 4 * (CONNECT_TIMEOUT + 1)


@pytest.mark.redis_only
def test_out_of_memory_is_redis_out_of_memory(queue: str) -> None:
    with (
        RedisServer(args=["--maxmemory", "1"]) as server,
        Client(server.url, queue=queue) as client,
        pytest.raises(RedisOutOfMemory, match="nothing was enqueued"),
    ):
        client.enqueue_many([("greet", i) for i in range(10)])


@pytest.mark.redis_only
def test_waiters_get_their_results_across_a_redis_restart(queue: str) -> None:
    # AOF on every write: the restarted server holds the jobs it held when it was killed.
    aof = ["--appendonly", "yes", "--appendfsync", "always"]
    with (
        RedisServer(args=aof) as server,
        worker_thread(server.url, queue),
        Client(server.url, queue=queue) as client,
    ):
        ids = [client.enqueue("call", add(i, 1), delay=2.5).id for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            waits = [pool.submit(client.wait, job_id, 30) for job_id in ids]
            time.sleep(0.5)  # every thread is waiting
            server.kill()
            time.sleep(1.0)
            server.start()
            assert [w.result() for w in waits] == [i + 1 for i in range(16)]


@pytest.mark.redis_only
def test_waiters_fail_when_redis_stays_down(queue: str) -> None:
    with RedisServer() as server, Client(server.url, queue=queue) as client:
        job = client.enqueue("call", add(1, 1))
        with ThreadPoolExecutor(4) as pool:
            waits = [pool.submit(client.wait, job.id, 60) for _ in range(4)]
            time.sleep(0.5)
            server.kill()
            started = time.monotonic()
            for w in waits:
                with pytest.raises(ConnectionFailed):
                    w.result()
        assert time.monotonic() - started < DOWN_LIMIT + 3


@pytest.mark.redis_only
def test_a_frozen_redis_is_an_error_within_the_command_timeout(queue: str) -> None:
    with RedisServer() as server, Client(server.url, queue=queue) as client:
        job = client.enqueue("call", add(1, 1))
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(client.wait, job.id, 120)
            time.sleep(0.5)
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                frozen_at = time.monotonic()
                for call in (
                    lambda: client.enqueue("greet", 1),
                    lambda: client.get(job.id),
                    lambda: client.wait(job.id, 120),
                ):
                    started = time.monotonic()
                    with pytest.raises(ConnectionFailed):
                        call()
                    assert time.monotonic() - started < COMMAND_TIMEOUT + 1.5
                # The wait that was under way: its reader's blocked read gets no answer within
                # its socket timeout (BLOCK_MS + COMMAND_TIMEOUT at most), and its waiters give
                # up after DOWN_LIMIT s without one.
                bound = BLOCK_MS / 1000 + COMMAND_TIMEOUT + DOWN_LIMIT + 5
                with pytest.raises(ConnectionFailed):
                    waiting.result(timeout=bound)
                assert time.monotonic() - frozen_at < bound
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
        client.ping()  # it serves again once Redis does
