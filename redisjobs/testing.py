"""Test helpers that users need as much as we do: a private redis-server and unique queues.

:class:`RedisServer` starts Debian's (or any) ``redis-server`` on a free loopback port with no
persistence, so a test session never touches a shared Redis and never needs FLUSHALL. Each test
takes its own queue name from :func:`unique_queue` instead (every key lives under that queue's
hash tag, so tests cannot see each other's jobs).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from redis.exceptions import RedisError

from .eventlog import NAME as EVENTS_NAME

if TYPE_CHECKING:
    from redis import Redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that refuses every connection while the block runs.

    Bound but never listening: no server can take it meanwhile, and no client's connection
    can land on it either. (A connect to a port that is merely free, as :func:`free_port`'s
    is, can pick that same port as its own source port in the ephemeral range, connect to
    itself, and read back what it sent as if a server had answered.)
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def unique_queue(prefix: str = "t") -> str:
    """A queue name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def log_followers(redis: Redis) -> int:
    """How many connections of redisjobs clients read event logs now (a synchronous client):
    a process that follows a queue, or waits for a job, has one per queue once it is reading."""
    return sum(c["name"] == EVENTS_NAME and c["cmd"] == "xread" for c in redis.client_list())


class RedisServer:
    """A redis-server child process on a free loopback port.

    Args:
        port: the port (default: a free one).
        args: extra ``redis-server`` arguments, e.g. ``["--appendonly", "yes"]``.
        executable: the binary (default: ``redis-server`` on PATH).

    The defaults are ``--save "" --appendonly no``; `args` given later win.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        args: list[str] | None = None,
        executable: str | None = None,
    ) -> None:
        exe = executable or shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH (apt-get install redis-server)")
        self.executable = exe
        self.port = port or free_port()
        self.args = list(args or [])
        self.dir = tempfile.mkdtemp(prefix="redisjobs-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        return [*cmd, "--save", "", "--appendonly", "no", "--dir", self.dir, *self.args]

    def start(self, timeout: float = 10.0) -> Self:
        """Start the server and wait until it answers PING."""
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {cmd}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def ping(self) -> bool:
        """True when the server answers PING (or asks for AUTH first): it is serving."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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


class SentinelSetup:
    """A master, its replicas and the sentinels watching them: each a child process on a free
    loopback port, without persistence. :attr:`url` is the ``redis+sentinel://`` URL to give
    a Client or Worker.

    Args:
        service: the name the sentinels know the master by.
        replicas: replicas of the master.
        sentinels: sentinels (a quorum of 2 agrees that the master is down).
        down_after_ms: how long the master must be silent before a sentinel calls it down.
    """

    def __init__(
        self,
        service: str = "mymaster",
        *,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
    ) -> None:
        self.service = service
        # No 5 s wait before a replica's first sync (nor after a failover's).
        fast = ["--repl-diskless-sync-delay", "0"]
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
        self, timeout: float = 30.0, *, not_on: RedisServer | None = None
    ) -> RedisServer:
        """Wait until every sentinel names the same master (not `not_on`, the one a failover
        moves it from) and every other running node is its replica, synced (after a failover:
        the old master converted); returns the master."""
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

    def stop(self) -> None:
        """Stop every process and remove their directories."""
        for server in (*self.sentinels, *self.nodes):
            server.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ClusterSetup:
    """A Redis Cluster: `masters` masters with `replicas` replicas each, every node a child
    process on a free loopback port without persistence, formed by ``redis-cli --cluster
    create`` (the slots spread evenly over the masters).

    Args:
        masters: masters (at least 3, as Redis Cluster requires).
        replicas: replicas of each master.
        node_timeout_ms: how long a master may be silent before the others fail it over.
    """

    def __init__(self, masters: int = 3, *, replicas: int = 1, node_timeout_ms: int = 2000) -> None:
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout", str(node_timeout_ms), "--repl-diskless-sync-delay", "0"]
        self.replicas = replicas
        ports = _cluster_ports(masters * (1 + replicas))
        self.nodes = [RedisServer(port, args=args) for port in ports]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """Every node's address (a cluster client needs any one of them)."""
        return [("127.0.0.1", node.port) for node in self.nodes]

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
        for node in self.nodes:
            if "cluster_state:ok" not in str(_ask(node, "CLUSTER", "INFO")):  # text
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

    def stop(self) -> None:
        """Stop every node and remove its directory."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
