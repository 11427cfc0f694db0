"""The Redis nodes serving a Client (Client.nodes), and where operators see them: `redisjobs
info`, /metrics and the dashboard; on real servers (a master and its replica, a Sentinel setup)
and on the embedded backend."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redisjobs import Client
from redisjobs.nodes import NodeInfo
from redisjobs.testing import RedisServer
from redisjobs.topologies import SentinelSetup
from tests.test_cli import ok

pytestmark = pytest.mark.timeout(60)

FAST = ["--repl-diskless-sync-delay", "0"]
"""No 5 s wait before a replica's first sync."""


def _link_up(replica: RedisServer) -> bool:
    with redis.Redis(port=replica.port, socket_timeout=2, decode_responses=True) as r:
        info: dict[str, Any] = r.info("replication")
    return info.get("master_link_status") == "up"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and its replica, synced (plain redis:// URLs)."""
    master = RedisServer(args=FAST)
    replica = RedisServer(args=[*FAST, "--replicaof", "127.0.0.1", str(master.port)])
    with master, replica:
        deadline = time.monotonic() + 20
        while not _link_up(replica):
            assert time.monotonic() < deadline, "the replica did not sync within 20 s"
            time.sleep(0.05)
        yield master, replica


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelSetup]:
    with SentinelSetup() as setup:
        yield setup


async def settled(client: Client) -> list[NodeInfo]:
    """The client's nodes once every replica its master lists is online (the master marks a
    replica online a moment after the replica sees its link up)."""
    deadline = time.monotonic() + 10
    while True:
        nodes = await client.nodes()
        replicas = [n for n in nodes if n.role == "replica"]
        if replicas and all(n.state == "online" for n in replicas):
            return nodes
        assert time.monotonic() < deadline, f"no replica online within 10 s: {nodes}"
        await asyncio.sleep(0.05)


def at(server: RedisServer) -> str:
    return f"127.0.0.1:{server.port}"


async def test_a_client_of_the_master_sees_it_and_its_replica_online(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair
    async with Client(master.url) as client:
        nodes = await settled(client)
    assert [(n.address, n.role) for n in nodes] == [
        (at(master), "master"),
        (at(replica), "replica"),
    ]
    assert nodes[0] == NodeInfo(at(master), "master")  # no state, lag or offset of its own
    mirror = nodes[1]
    assert mirror.state == "online" and mirror.lag_s is not None and 0 <= mirror.lag_s < 5
    assert mirror.offset_behind is not None and mirror.offset_behind >= 0


async def test_a_client_of_the_replica_sees_its_role_and_its_master(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair
    async with Client(replica.url) as client:
        nodes = await client.nodes()
    assert nodes == [NodeInfo(at(replica), "replica", state="up"), NodeInfo(at(master), "master")]


async def test_one_master_alone(url: str, redis_server: RedisServer) -> None:
    async with Client(url) as client:
        nodes = await client.nodes()
    address = "memory" if url.startswith("memory://") else at(redis_server)
    assert nodes == [NodeInfo(address, "master")]


async def test_a_redis_that_refuses_info_shows_the_node_talked_to() -> None:
    with RedisServer() as server:
        with redis.Redis(port=server.port, socket_timeout=2) as admin:
            admin.acl_setuser("no-info", enabled=True, passwords=["+pw"], keys=["*"],
                              channels=["*"], commands=["+@all", "-info"])  # fmt: skip
        url = f"redis://no-info:pw@127.0.0.1:{server.port}/0"
        with (
            redis.Redis.from_url(url, socket_timeout=2) as limited,
            pytest.raises(redis.exceptions.NoPermissionError),
        ):
            limited.info("replication")
        async with Client(url) as client:
            assert await client.nodes() == [NodeInfo(at(server), "master")]


async def test_through_the_sentinels_the_master_its_replica_and_the_sentinels(
    sentinel: SentinelSetup,
) -> None:
    async with Client(sentinel.url) as client:
        nodes = await settled(client)
    by_role = {
        role: [n.address for n in nodes if n.role == role]
        for role in ("master", "replica", "sentinel")
    }
    assert by_role == {
        "master": [at(sentinel.current_master())],
        "replica": [at(r) for r in sentinel.replicas],
        "sentinel": [at(s) for s in sentinel.sentinels],
    }
    assert len(nodes) == 5


def test_info_shows_the_nodes(pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = pair
    document = json.loads(ok("info", "--json", "--redis", master.url))
    nodes = {n["address"]: n for n in document["nodes"]}
    assert nodes[at(master)] == {
        "address": at(master),
        "role": "master",
        "state": None,
        "lag_s": None,
        "offset_behind": None,
    }
    assert nodes[at(replica)]["role"] == "replica" and len(nodes) == 2

    text = ok("info", "--redis", master.url)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert rows["NODE"] == ["ROLE", "STATE", "LAG", "BEHIND"]
    assert rows[at(master)] == ["master", "-", "-", "-"]
    assert rows[at(replica)][0] == "replica"


async def test_metrics_count_the_nodes_by_role_and_the_replica_s_lag(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    pytest.importorskip("prometheus_client", reason="the metrics extra is not installed")
    from prometheus_client.parser import text_string_to_metric_families

    from redisjobs.metrics import render

    master, replica = pair
    async with Client(master.url) as client:
        await settled(client)
        text = (await render(client)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("redisjobs_redis_nodes", (("role", "master"),))] == 1
    assert samples[("redisjobs_redis_nodes", (("role", "replica"),))] == 1
    assert ("redisjobs_redis_nodes", (("role", "sentinel"),)) not in samples
    assert 0 <= samples[("redisjobs_replica_lag_seconds", (("address", at(replica)),))] < 5


async def test_the_dashboard_shows_the_nodes(pair: tuple[RedisServer, RedisServer]) -> None:
    pytest.importorskip("starlette", reason="the dashboard extra is not installed")
    pytest.importorskip("jinja2", reason="the dashboard extra is not installed")
    import httpx

    from redisjobs.dashboard import create_app

    master, replica = pair
    async with Client(master.url) as client:
        await settled(client)
        transport = httpx.ASGITransport(app=create_app(client))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            api = (await http.get("/api/queues")).json()
            page = (await http.get("/")).text
    assert [(n["address"], n["role"]) for n in api["nodes"]] == [
        (at(master), "master"),
        (at(replica), "replica"),
    ]
    assert api["nodes"][1]["state"] == "online"
    assert f'data-node="{at(replica)}" data-role="replica"' in page
