"""Fixtures: one private redis-server per session, a backend per test, a queue per test.

Tests that take `url` run twice: on the real redis-server and on the embedded backend
(`memory://<unique>`); mark a test `redis_only` when the embedded backend cannot do it.
Nothing is ever flushed: each test has its own queue name, so its keys are its own.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from redisjobs import Client, Event, Worker
from redisjobs.keys import QueueKeys
from redisjobs.pyjobkit.backends.store import StoreBackend
from redisjobs.pyjobkit.cli_common import backend_of
from redisjobs.scripts import Scripts
from redisjobs.testing import RedisServer, unique_queue


@pytest.fixture(scope="module", autouse=True)
def _collect_garbage_per_module() -> Iterator[None]:
    """Finalise what a module's tests left behind at the module's end.

    An unclosed connection's ResourceWarning then fails the module that leaked it, instead of
    whichever later test the collector happens to run in (where, inside ``ast.parse``, CPython
    3.11 even turns it into a SystemError).
    """
    yield
    gc.collect()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["redis", "memory"])
def url(request: pytest.FixtureRequest, redis_server: RedisServer) -> str:
    if request.param == "memory":
        if request.node.get_closest_marker("redis_only"):
            pytest.skip("needs a real redis-server")
        return f"memory://{uuid.uuid4().hex}"
    return redis_server.url


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def queue() -> str:
    return unique_queue()


@pytest.fixture
async def client(url: str, queue: str) -> AsyncIterator[Client]:
    async with Client(url, queue=queue) as c:
        yield c


@pytest.fixture
def scripts(client: Client) -> Scripts:
    """The scripts, registered on the test's client."""
    return Scripts(client.redis, embedded=client.backend.embedded)


@pytest.fixture
def keys(client: Client) -> QueueKeys:
    """The key names of the test's queue."""
    return client.keys()


WorkerFactory = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def worker(url: str, queue: str) -> AsyncIterator[WorkerFactory]:
    """A factory of running in-process workers; whatever it made is stopped afterwards."""
    made: list[Worker] = []

    async def make(**kwargs: Any) -> Worker:
        kwargs.setdefault("queue", queue)
        kwargs.setdefault("handle_signals", False)
        kwargs.setdefault("poll_interval", 0.05)
        w = Worker(url, **kwargs)
        await w.__aenter__()
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop(now=True)
        await w.__aexit__(None, None, None)


async def log_events(client: Client, job_id: str | None = None) -> list[Event]:
    """The events of the client's queue (or of one job) kept in the capped log stream."""
    entries: Any = await client.redis.xrange(client.keys().log)
    events = [Event.decode(fields[b"e"], eid.decode(), client.queue) for eid, fields in entries]
    return [ev for ev in events if job_id is None or ev.job_id == job_id]


def planned(client: Client, ms: int) -> range:
    """The gaps an event may show between its time and a due time its script set `ms` ahead.

    The script plans from the clock it read as it began; the event's time is its log entry
    id's, stamped when the script writes it, later in the same run (Redis 7.0's clock runs on
    through a script, and so does the embedded backend's, a slower one). So the gap is `ms`
    less the script's run so far: well under a millisecond on a quiet Redis, more on a loaded
    machine."""
    slack = 250 if client.backend.embedded else 100
    return range(ms - slack, ms + 1)


@pytest.fixture
def backend(url: str, queue: str) -> StoreBackend:
    """A Pyjobkit face backend on the session's redis-server, or on the embedded one."""
    return backend_of(url, queue)
