"""The local Redis Cluster the test session can start (3 masters, 3 replicas on free ports):
formed, every slot served, each master with its synced replica, keys of different hash tags on
different masters. The cluster tests of the queue build on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.cluster import RedisCluster

from redisjobs.topologies import ClusterSetup

pytestmark = [pytest.mark.redis_only, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSetup]:
    with ClusterSetup() as setup:
        yield setup


def test_three_masters_each_with_a_synced_replica(cluster: ClusterSetup) -> None:
    masters = cluster.masters()
    assert len(masters) == 3 and len(cluster.nodes) == 6
    for master in masters:
        assert len(cluster._ask_replicas(master)) == 1


def test_hash_tags_spread_over_the_masters_and_a_cluster_client_reaches_each(
    cluster: ClusterSetup,
) -> None:
    host, port = cluster.startup_nodes[0]
    client = RedisCluster(host=host, port=port, socket_timeout=2)
    try:
        homes: dict[int, str] = {}
        for n in range(200):
            key = f"rj:{{q{n}}}:ready"
            homes.setdefault(cluster.node_of(key).port, key)
            if len(homes) == 3:
                break
        assert len(homes) == 3, "200 tags all landed on fewer than 3 masters"
        for port_, key in homes.items():
            client.set(key, port_)
            assert int(client.get(key) or 0) == port_
    finally:
        client.close()
