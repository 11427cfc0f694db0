"""A Redis that stops being a master under a running worker (a failover seen from the side of the
demoted node), and workers whose host clocks disagree with Redis's."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from redisjobs import Client
from tests.faults.conftest import MakeClient, MakeRedis
from tests.faults.harness import Spawner, redis_time_ms, statuses, until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


async def _run_jobs(client: Client, n: int) -> None:
    jobs = await client.enqueue_many(
        [("call", {"fn": "tests.jobs:add", "kwargs": {"a": i, "b": 1}}) for i in range(n)]
    )
    ids = [j.id for j in jobs]

    async def done() -> bool:
        got = await statuses(client.redis, client.queue, ids)
        return set(got.values()) == {"completed"}

    await until(done, 30, f"{n} jobs to complete")


async def test_a_worker_waits_out_its_redis_becoming_a_replica(
    make_redis: MakeRedis, make_client: MakeClient, workers: Spawner
) -> None:
    """READONLY (the node was demoted by a failover) is an outage to wait out, not a reason to
    exit: the worker keeps trying, and serves again once the node is a master again."""
    node, other = make_redis(), make_redis()
    client = await make_client(node.url)
    w = workers.spawn(node.url, name="w", lease_ttl=2)
    await w.wait_registered(client.redis)
    await _run_jobs(client, 20)
    await client.redis.replicaof("127.0.0.1", other.port)

    async def replica() -> bool:
        info: Any = await client.redis.info("replication")
        return bool(info.get("master_link_status") == "up")

    await until(replica, 15, "the node to become a replica")
    await asyncio.sleep(3.0)  # the fetcher, scheduler and reclaim loops all hit READONLY
    assert w.alive, w.log()[-3000:]
    await client.redis.replicaof("NO", "ONE")
    await _run_jobs(client, 20)  # its data is the other node's now: an empty queue
    assert w.alive, w.log()[-3000:]
    assert "read only replica" in w.log()


_SKEWED = (
    "import runpy, sys, time\n"
    "real, skew = time.time, float(sys.argv[1])\n"
    "time.time = lambda: real() + skew\n"
    "sys.argv = ['redisjobs', *sys.argv[2:]]\n"
    "runpy.run_module('redisjobs', run_name='__main__')\n"
)


async def test_the_worker_registry_runs_on_redis_time(
    make_redis: MakeRedis, make_client: MakeClient, workers: Spawner
) -> None:
    """Three workers whose host clocks are an hour ahead, right, and an hour behind: none evicts
    another from the registry, and each heartbeat reads as fresh on Redis's clock."""
    server = make_redis()
    client = await make_client(server.url)
    procs = []
    for name, skew in (("ahead", 3600), ("right", 0), ("behind", -3600)):
        args = ["worker", "--url", server.url, "--queue", client.queue, "--lease-ttl", "2"]
        cmd = [sys.executable, "-c", _SKEWED, str(skew), *args]
        procs.append(workers.spawn_command(cmd, server.url, name=name))
    for proc in procs:
        await proc.wait_registered(client.redis)
    await asyncio.sleep(2.5)  # a few registry refreshes of each
    now = await redis_time_ms(client.redis)
    found = await client.workers()  # the live ones, judged on Redis's clock
    assert len(found) == 3, [w.id for w in found]
    for info in found:
        assert info.heartbeat_at is not None and info.started_at is not None
        assert abs(info.heartbeat_at.timestamp() * 1000 - now) < 5000, info
        assert abs(info.started_at.timestamp() * 1000 - now) < 60_000, info
    assert all(info.state == "live" and client.queue in info.queues for info in found), found
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "redisjobs", "info", "--url", server.url, "--json"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    ages = [w["heartbeat_age"] for w in json.loads(shown.stdout)["workers"]]
    assert len(ages) == 3 and all(0 <= age < 5 for age in ages), ages
