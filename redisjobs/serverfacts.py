"""What an operator wants to know of the Redis that holds the jobs, and the settings that lose
jobs: from one ``INFO`` of the master the Client talks to (on a cluster, the registry's).

Two settings lose jobs, and each is a risk shown beside the facts (and logged by a worker at
start, :func:`redisjobs.connection.check_server`): a ``maxmemory-policy`` other than
``noeviction`` lets Redis evict job data when it fills up, and ``appendonly no`` loses every
write since the last snapshot when Redis crashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

if TYPE_CHECKING:
    from .connection import Backend


def risks(policy: str, appendonly: bool) -> list[str]:
    """What the settings `policy` (``maxmemory-policy``) and `appendonly` risk, in words."""
    found = []
    if policy != "noeviction":
        found.append(
            f"maxmemory-policy is {policy}: Redis may evict job data when it is full and "
            "lose jobs; set it to noeviction"
        )
    if not appendonly:
        found.append(
            "appendonly is no: a Redis crash loses every job written since the last snapshot; "
            "turn AOF on (appendonly yes)"
        )
    return found


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """A Redis server as its ``INFO`` describes it.

    Attributes:
        version: ``redis_version``.
        mode: ``standalone``, ``sentinel`` or ``cluster``.
        uptime_s: seconds since it started.
        used_memory, maxmemory: bytes used, and the limit (0: none).
        maxmemory_policy: what it does when full.
        fragmentation: ``mem_fragmentation_ratio``.
        clients, blocked_clients: connections, and those in a blocking read.
        appendonly: AOF on.
        last_save: when the last RDB snapshot was written (Unix time; 0: never).
        ops_per_sec: commands per second now.
    """

    version: str
    mode: str
    uptime_s: int
    used_memory: int
    maxmemory: int
    maxmemory_policy: str
    fragmentation: float
    clients: int
    blocked_clients: int
    appendonly: bool
    last_save: int
    ops_per_sec: int

    @property
    def risks(self) -> list[str]:
        """The settings of this server that lose jobs (see the module)."""
        return risks(self.maxmemory_policy, self.appendonly)


async def server_facts(redis: Redis, backend: Backend) -> ServerFacts | None:
    """The facts of the server `redis` talks to; None on the embedded backend, or where
    ``INFO`` is refused (it is in the ACL category @dangerous)."""
    if backend.embedded:
        return None
    try:
        info: Any = await redis.info()
    except ResponseError:
        return None
    return ServerFacts(
        version=str(info.get("redis_version", "?")),
        mode=str(info.get("redis_mode", "standalone")),
        uptime_s=int(info.get("uptime_in_seconds", 0)),
        used_memory=int(info.get("used_memory", 0)),
        maxmemory=int(info.get("maxmemory", 0)),
        maxmemory_policy=str(info.get("maxmemory_policy", "noeviction")),
        fragmentation=float(info.get("mem_fragmentation_ratio", 0.0)),
        clients=int(info.get("connected_clients", 0)),
        blocked_clients=int(info.get("blocked_clients", 0)),
        appendonly=bool(int(info.get("aof_enabled", 0))),
        last_save=int(info.get("rdb_last_save_time", 0)),
        ops_per_sec=int(info.get("instantaneous_ops_per_sec", 0)),
    )
