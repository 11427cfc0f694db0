"""Redis topologies for tests, each of real servers on free loopback ports: a Sentinel setup
(a master, its replicas and three sentinels) and a Redis Cluster (masters with replicas).

They are what the test session starts for the Sentinel and Cluster tests; users can start the
same to test their own code against a failover.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from redis.exceptions import RedisError

from .testing import RedisServer, free_port


class SentinelServer(RedisServer):
    """A Redis Sentinel child process on a free loopback port, watching the master at
    `master_port` as `service` (quorum 2; the timings of :class:`SentinelSetup`)."""

    def __init__(self, service: str, master_port: int, *, down_after_ms: int = 1000) -> None:
        super().__init__()
        conf = Path(self.dir) / "sentinel.conf"
        conf.write_text(
            f"sentinel monitor {service} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
            f"sentinel failover-timeout {service} 10000\n"
            f"sentinel parallel-syncs {service} 1\n"
        )
        self.conf = str(conf)

    def command(self) -> list[str]:
        """The command line that starts the sentinel (``redis-server sentinel.conf
        --sentinel``: Debian ships no ``redis-sentinel`` of its own)."""
        cmd = [self.executable, self.conf, "--sentinel", "--port", str(self.port)]
        return [*cmd, "--bind", "127.0.0.1", "--dir", self.dir]


class _Topology:
    """Servers started together: ``with`` starts them (stopping any started when one fails)
    and stops them all."""

    def start(self, timeout: float = 30.0) -> Self:
        raise NotImplementedError

    def processes(self) -> list[RedisServer]:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every process and remove their directories."""
        for server in self.processes():
            server.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SentinelSetup(_Topology):
    """A master, its replicas and the sentinels watching them: each a child process on a free
    loopback port, without persistence unless `node_args` ask for it. :attr:`url` is the
    ``redis+sentinel://`` URL to give a Client or Worker.

    Args:
        service: the name the sentinels know the master by.
        replicas: replicas of the master.
        sentinels: sentinels (a quorum of 2 agrees that the master is down).
        down_after_ms: how long the master must be silent before a sentinel calls it down.
        node_args: more ``redis-server`` arguments for the master and the replicas, e.g.
            ``["--appendonly", "yes"]`` for nodes that come back from a crash with their data.
    """

    def __init__(
        self,
        service: str = "mymaster",
        *,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        node_args: Sequence[str] = (),
    ) -> None:
        self.service = service
        # No 5 s wait before a replica's first sync (nor after a failover's).
        fast = ["--repl-diskless-sync-delay", "0", *node_args]
        self.master = RedisServer(args=fast)
        self.replicas = [
            RedisServer(args=[*fast, "--replicaof", "127.0.0.1", str(self.master.port)])
            for _ in range(replicas)
        ]
        self.sentinels = [
            SentinelServer(service, self.master.port, down_after_ms=down_after_ms)
            for _ in range(sentinels)
        ]

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:<port>,.../<service>/0``."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    @property
    def nodes(self) -> list[RedisServer]:
        """The master and the replicas, as started (a failover swaps their roles)."""
        return [self.master, *self.replicas]

    def start(self, timeout: float = 30.0) -> Self:
        """Start every process; returns once each sentinel knows every replica and every
        other sentinel (so that a failover can be agreed on), and each replica has synced."""
        for server in (*self.nodes, *self.sentinels):
            server.start()
        _wait(self._settled, timeout, "the sentinels to find the replicas and each other")
        return self

    def _settled(self) -> bool:
        for replica in self.replicas:
            if _ask(replica, "INFO", "replication")["master_link_status"] != "up":
                return False
        want = {"num-slaves": len(self.replicas), "num-other-sentinels": len(self.sentinels) - 1}
        for sentinel in self.sentinels:
            state = _ask(sentinel, "SENTINEL", "MASTER", self.service)  # a dict
            if any(int(state.get(k, -1)) != v for k, v in want.items()):
                return False
        return True

    def master_port(self) -> int:
        """The port of the master, as the first sentinel that answers says."""
        for sentinel in self.sentinels:
            with contextlib.suppress(OSError, RedisError):
                _, port = _ask(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                return int(port)
        raise RuntimeError("no sentinel answered")

    def current_master(self) -> RedisServer:
        """The node that is the master now."""
        port = self.master_port()
        return next(n for n in self.nodes if n.port == port)

    def wait_settled(
        self, timeout: float = 90.0, *, not_on: RedisServer | None = None
    ) -> RedisServer:
        """Wait until every sentinel names the same master (not `not_on`, the one a failover
        moves it from) and every other running node is its replica, synced (after a failover:
        the old master converted); returns the master.

        A sentinel converts an old master that comes back only once it has reported itself a
        master for 8 s, and looks at a replica every 10 s: allow that several times over on a
        loaded machine."""
        ports: set[int] = set()

        def settled() -> bool:
            ports.clear()
            for sentinel in self.sentinels:
                _, port = _ask(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                ports.add(int(port))
            if len(ports) != 1 or (not_on is not None and not_on.port in ports):
                return False
            (port,) = ports
            for node in self.nodes:
                if node.port == port or not node.ping():
                    continue
                info = _ask(node, "INFO", "replication")
                if info.get("master_port") != port or info["master_link_status"] != "up":
                    return False
            return True

        _wait(settled, timeout, "the sentinels and the nodes to agree on one master")
        (port,) = ports
        return next(n for n in self.nodes if n.port == port)

    def failover(self) -> None:
        """Ask a sentinel for a failover (``SENTINEL FAILOVER``): a replica becomes master."""
        _ask(self.sentinels[0], "SENTINEL", "FAILOVER", self.service)

    def processes(self) -> list[RedisServer]:
        """The sentinels, then the nodes."""
        return [*self.sentinels, *self.nodes]


class ClusterSetup(_Topology):
    """A Redis Cluster: `masters` masters with `replicas` replicas each, every node a child
    process on a free loopback port without persistence (unless `node_args` ask for it), formed
    by ``redis-cli --cluster create`` (the slots spread evenly over the masters).

    Args:
        masters: masters (at least 3, as Redis Cluster requires).
        replicas: replicas of each master.
        node_timeout_ms: how long a master may be silent before the others fail it over.
        node_args: more ``redis-server`` arguments for every node (see :class:`SentinelSetup`).
    """

    def __init__(
        self,
        masters: int = 3,
        *,
        replicas: int = 1,
        node_timeout_ms: int = 2000,
        node_args: Sequence[str] = (),
    ) -> None:
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout", str(node_timeout_ms), "--repl-diskless-sync-delay", "0"]
        args += node_args
        self.replicas = replicas
        ports = _cluster_ports(masters * (1 + replicas))
        self.nodes = [RedisServer(port, args=args) for port in ports]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """Every node's address (a cluster client needs any one of them)."""
        return [("127.0.0.1", node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming two of the nodes (either is enough to find the rest)."""
        return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in self.startup_nodes[:2])

    def queues_on_each_master(self, stem: str) -> list[str]:
        """One queue name per master, each ``<stem>-<n>``, whose slot that master serves."""
        found: dict[int, str] = {}
        for n in range(1000):
            name = f"{stem}-{n}"
            found.setdefault(self.node_of(f"rj:{{{name}}}:").port, name)
            if len(found) == len(self.masters()):
                return list(found.values())
        raise LookupError("1000 names all landed on fewer masters")

    def migrate(self, key: str, to: RedisServer, batch: int = 100, pause: float = 0.0) -> None:
        """Move `key`'s slot, and every key in it, to master `to` (as ``redis-cli --cluster
        reshard`` does: IMPORTING/MIGRATING, MIGRATE `batch` keys at a time, then SETSLOT NODE
        on all), `pause` seconds between batches (a slow migration, for traffic to meet)."""
        source = self.node_of(key)
        slot = int(_ask(source, "CLUSTER", "KEYSLOT", key))
        source_id, target_id = _ask(source, "CLUSTER", "MYID"), _ask(to, "CLUSTER", "MYID")
        _ask(to, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        _ask(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
        while keys := _ask(source, "CLUSTER", "GETKEYSINSLOT", str(slot), str(batch)):
            _ask(source, "MIGRATE", "127.0.0.1", str(to.port), "", "0", "5000", "KEYS", *keys)
            time.sleep(pause)
        for node in self.masters():
            _ask(node, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)

    def failover(self, master: RedisServer, timeout: float = 60.0) -> RedisServer:
        """Promote a replica of `master` (``CLUSTER FAILOVER`` on it, the graceful kind), and
        return it once every node agrees."""
        replica = next(n for n in self.nodes if _replica_of(n, master))
        deadline = time.monotonic() + timeout
        # A manual failover the master does not take part in gives up after a few seconds
        # (a replica the cluster has not gossiped about yet): ask again until one goes through.
        while True:
            _ask(replica, "CLUSTER", "FAILOVER")
            with contextlib.suppress(RuntimeError):
                _wait(lambda: _ask(replica, "ROLE")[0] == "master", 10, "the promotion")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no promotion of {replica.port} within {timeout} s")
        _wait(self._agreed, timeout, "every node to see the new master")
        return replica

    def _agreed(self) -> bool:
        """Whether every live node reports the cluster ``ok`` with the same masters."""
        views = set()
        for node in self.nodes:
            if not node.ping():
                continue
            if "cluster_state:ok" not in str(_ask(node, "CLUSTER", "INFO")):
                return False
            slots = _ask(node, "CLUSTER", "SLOTS")
            views.add(tuple(sorted((s[0], s[2][1]) for s in slots)))
        return len(views) == 1

    def start(self, timeout: float = 60.0) -> Self:
        """Start every node, form the cluster, and return once every node reports it ``ok``
        and every master has its replicas synced."""
        for node in self.nodes:
            node.start()
        addresses = [f"{host}:{port}" for host, port in self.startup_nodes]
        create = ["redis-cli", "--cluster", "create", *addresses]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=timeout)
        _wait(self._formed, timeout, "the cluster to form")
        return self

    def _formed(self) -> bool:
        replicas = len(self.nodes) - len(self.nodes) // (1 + self.replicas)
        for node in self.nodes:
            if "cluster_state:ok" not in str(_ask(node, "CLUSTER", "INFO")):  # text
                return False
            # every node has heard which nodes are replicas (gossip takes a moment)
            flags = [line.split()[2] for line in str(_ask(node, "CLUSTER", "NODES")).splitlines()]
            if sum("slave" in f.split(",") for f in flags) != replicas:
                return False
        synced = [len(self._ask_replicas(master)) == self.replicas for master in self.masters()]
        return all(synced)

    def masters(self) -> list[RedisServer]:
        """The nodes that are masters now (a failover changes them)."""
        return [n for n in self.nodes if n.ping() and _ask(n, "ROLE")[0] == "master"]

    @staticmethod
    def _ask_replicas(master: RedisServer) -> list[Any]:
        """A master's replicas that are online (from its INFO replication)."""
        info = _ask(master, "INFO", "replication")
        return [v for k, v in info.items() if k.startswith("slave") and v.get("state") == "online"]

    def node_of(self, key: str) -> RedisServer:
        """The master that serves `key`'s slot now."""
        node = next(n for n in self.nodes if n.ping())
        slot = int(_ask(node, "CLUSTER", "KEYSLOT", key))
        for start, end, master, *_ in _ask(node, "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return next(n for n in self.nodes if n.port == int(master[1]))
        raise LookupError(f"no master serves slot {slot}")

    def processes(self) -> list[RedisServer]:
        """The nodes."""
        return list(self.nodes)


def _replica_of(node: RedisServer, master: RedisServer) -> bool:
    role = _ask(node, "ROLE") if node.ping() else ["down"]
    return bool(role[0] == "slave" and int(role[2]) == master.port)


def _cluster_ports(n: int) -> list[int]:
    """`n` free ports whose cluster bus ports (each + 10000) are free and valid too."""
    ports: set[int] = set()
    while len(ports) < n:
        port = free_port()
        if port + 10000 < 65536 and port not in ports:
            with contextlib.suppress(OSError), socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
                ports.add(port)
    return sorted(ports)


def _ask(server: RedisServer, *command: str) -> Any:
    """One command's reply from `server` (redis-py's parsing: INFO and SENTINEL as dicts)."""
    import redis

    with redis.Redis(port=server.port, socket_timeout=2, decode_responses=True) as r:
        return r.execute_command(*command)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, RedisError):
            if predicate():
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
