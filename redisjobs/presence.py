"""What a worker's registry entry says beyond its leases (its counts, what it may run, whether
it is quiet), and the signals an operator leaves there for it (see :mod:`redisjobs.workerinfo`).

A signal is read with each registry refresh, a heartbeat apart (``lease_ttl / 3``), in the
refresh's own round trip: it costs a job nothing, and a worker that was down when it was sent
still reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.typing import EncodableT

from .keys import Registry
from .roundtrips import Flow, cmd
from .workerinfo import LISTED_JOBS, REGISTRY_HORIZON

log = logging.getLogger("redisjobs.worker")

SIGNAL_FIELD = "signal"


def _nothing() -> None:
    return None


@dataclass(slots=True)
class Presence:
    """One worker's part of its registry entry.

    Args:
        allowed: what it may run (its executors' kinds and the functions of ``call``), asked
            at each refresh (a JobManager registers functions as it goes).
        quiet: makes the worker take no more jobs (``quiet`` signal).
        stop: stops the worker gracefully (``stop`` signal).
    """

    allowed: Callable[[], str] = str
    quiet: Callable[[], None] = _nothing
    stop: Callable[[], None] = _nothing
    processed: int = 0
    failed: int = 0
    quieted: bool = False
    stopping: bool = False

    def ended(self, *, failed: bool) -> None:
        """Count a run that ended with an outcome (completed, cancelled, or `failed`: it raised
        or timed out, whether it is retried or not)."""
        self.processed += 1
        self.failed += failed

    def fields(self, running: Sequence[str]) -> dict[EncodableT, EncodableT]:
        """The entry's fields of this worker, with `running` the ids of the jobs it holds."""
        return {
            "held": len(running),
            "running": ",".join(running[:LISTED_JOBS]),
            "processed": self.processed,
            "failed": self.failed,
            "allowed": self.allowed(),
            "state": "quiet" if self.quieted else "live",
        }

    def signal(self, raw: bytes | None) -> None:
        """Act on the entry's signal field as read now (None: no signal)."""
        if raw == b"quiet" and not self.quieted:
            log.warning("quiet asked through the registry: taking no more jobs")
            self.quiet()
        elif raw == b"stop" and not self.stopping:
            self.stopping = True
            log.warning("stop asked through the registry: stopping gracefully")
            self.stop()


def signal_flow(registry: Registry, worker_id: str, signal: str) -> Flow[None]:
    """Leave `signal` in the worker's entry (whose expiry the worker sets the same way)."""
    key = registry.worker(worker_id)
    yield [
        cmd("hset", key, SIGNAL_FIELD, signal),
        cmd("pexpire", key, int(REGISTRY_HORIZON * 1000)),
    ]
