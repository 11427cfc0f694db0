"""Fixtures of the fault suite (``tests/faults``); the machinery lives in ``harness.py``.

Every test here gets the ``faults`` marker (added below, whatever its module says; still put
``pytestmark = [pytest.mark.faults, ...]`` in each module). Select or skip the suite with
``-m faults`` / ``-m "not faults"``.

A scenario typically reads::

    async def test_x(scenario, workers, ledger):
        server, client, tail = await scenario("aof")     # a FaultRedis, started; a Client on
                                                         # the test's queue; its event log tail
        w1 = workers.spawn(server.url, lease_ttl=2)      # a `redisjobs worker` process
        w2, w3 = await workers.start(server.url, 2, client.redis, lease_ttl=2)  # ...registered
        ids = await enqueue_ledger_jobs(client, 100)     # tests.jobs:ledger jobs
        ...faults: w1.kill(), server.restart(), proxy...
        figures = await check("name", client.redis, queue, ids, tail=tail, ledger=ledger,
                              measure=...)  # prints + $FAULTS_RESULTS, then asserts the bars

Fixtures:

* ``ledger_server`` (session) — the ledger's redis-server, never faulted.
* ``ledger`` — a :class:`~tests.faults.harness.Ledger` with a key of its own for the test.
* ``queue`` — a unique queue name for the test.
* ``make_redis(mode="plain", *, debug=False, args=(), port=None)`` — a started
  :class:`~tests.faults.harness.FaultRedis` (``"plain"`` = no persistence, ``"aof"`` = AOF
  everysec); closed (and its directory removed) at the end of the test.
* ``redis_under_test`` — ``make_redis("plain")`` for tests that need just one.
* ``workers`` — a :class:`~tests.faults.harness.Spawner` for the test's queue with the ledger's
  environment; ``workers.spawn(url, ...)`` starts a worker process (see its docstring), logs go
  to ``tmp_path/<name>.log``; everything still running is resumed and killed at the end.
* ``make_client(url, queue=None, **options)`` — a connected :class:`~redisjobs.Client`
  (default: the test's queue), closed at the end.
* ``make_tail(url, queue=None)`` — a started :class:`~tests.faults.harness.EventTail`,
  stopped at the end.
* ``make_proxy(seed=None)`` — a started :class:`~tests.faults.proxy.FaultProxy` to
  ``redis_under_test``, stopped at the end.
* ``scenario(mode="plain", **redis_options)`` — the three above on one new server:
  ``(server, client, tail)``.

The checker is :func:`tests.faults.harness.check` (a plain coroutine function, not a fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from redisjobs import Client
from redisjobs.testing import RedisServer, unique_queue
from tests.faults.harness import EventTail, FaultRedis, Ledger, Spawner
from tests.faults.proxy import FaultProxy

HERE = Path(__file__).resolve().parent

MakeRedis = Callable[..., FaultRedis]
MakeProxy = Callable[..., FaultProxy]
MakeClient = Callable[..., Awaitable[Client]]
MakeTail = Callable[..., Awaitable[EventTail]]


class Scenario(NamedTuple):
    """What most fault scenarios start from: a Redis under test, a client and an event tail."""

    server: FaultRedis
    client: Client
    tail: EventTail


MakeScenario = Callable[..., Awaitable[Scenario]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``faults``."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def ledger_server() -> Iterator[RedisServer]:
    """The ledger's redis-server: outside every Redis under test, never faulted."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def ledger(ledger_server: RedisServer) -> AsyncIterator[Ledger]:
    """This test's ledger list (``tests.jobs:ledger`` writes ``start``/``end`` lines here)."""
    book = Ledger(ledger_server.url, f"ledger:{unique_queue('l')}")
    yield book
    await book.aclose()


@pytest.fixture
def queue() -> str:
    """A queue name of this test's own."""
    return unique_queue("fault")


@pytest.fixture
def make_redis() -> Iterator[MakeRedis]:
    """A factory of started redis-servers under test; every one is closed at the end.

    ``make_redis(mode="plain" | "aof", *, debug=False, args=(), port=None) -> FaultRedis``.
    """
    made: list[FaultRedis] = []

    def make(
        mode: str = "plain",
        *,
        debug: bool = False,
        args: Sequence[str] = (),
        port: int | None = None,
    ) -> FaultRedis:
        server = FaultRedis(mode, debug=debug, args=args, port=port)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.close()


@pytest.fixture
def redis_under_test(make_redis: MakeRedis) -> FaultRedis:
    """One redis-server without persistence, for this test alone."""
    return make_redis("plain")


@pytest.fixture
def workers(tmp_path: Path, queue: str, ledger: Ledger) -> Iterator[Spawner]:
    """Spawns ``redisjobs worker`` processes (ledger env set); kills leftovers at the end."""
    spawner = Spawner(tmp_path, queue, env=ledger.env())
    yield spawner
    spawner.cleanup()


@pytest.fixture
async def make_client(queue: str) -> AsyncIterator[MakeClient]:
    """``await make_client(url, queue=None, **options)``: a connected Client, closed at the end."""
    made: list[Client] = []

    async def make(url: str, queue_name: str | None = None, **options: Any) -> Client:
        client = Client(url, queue=queue_name or queue, **options)
        await client.connect()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def make_tail(queue: str) -> AsyncIterator[MakeTail]:
    """``await make_tail(url, queue=None)``: a started EventTail, stopped at the end."""
    made: list[EventTail] = []

    async def make(url: str, queue_name: str | None = None, interval: float = 0.1) -> EventTail:
        tail = EventTail(url, queue_name or queue, interval=interval)
        made.append(tail)
        return await tail.start()

    yield make
    for tail in made:
        await tail.stop()


@pytest.fixture
def scenario(make_redis: MakeRedis, make_client: MakeClient, make_tail: MakeTail) -> MakeScenario:
    """``await scenario(mode="plain", **redis_options)``: a new server under test, a client of
    it and a tail of its event log (all closed at the end)."""

    async def make(mode: str = "plain", **redis_options: Any) -> Scenario:
        server = make_redis(mode, **redis_options)
        return Scenario(server, await make_client(server.url), await make_tail(server.url))

    return make


@pytest.fixture
def make_proxy(redis_under_test: FaultRedis) -> Iterator[MakeProxy]:
    """``make_proxy(seed=None)``: a started proxy to the test's Redis; all stopped at the end."""
    made: list[FaultProxy] = []

    def make(seed: int | None = None) -> FaultProxy:
        proxy = FaultProxy(redis_under_test.port, seed=seed).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.stop()
