"""Durable writes: a write is acknowledged only once replicas have it (``WAIT``).

Redis replicates asynchronously: a master acknowledges a write before any replica has it, and a
failover that promotes a replica loses what had not reached it yet (docs/guarantees.md,
"Failover"). A durable client follows its script calls with ``WAIT <replicas> <timeout>`` on the
same connection (one ``WAIT`` after all the calls of a turn of the event loop; a ``WAIT`` covers
every write its connection made before it); a call returns only when that many replicas
confirmed it, and raises :class:`NotReplicated` when they did not within the timeout. A worker
made durable does the same for the outcomes it records (``complete``, ``fail``, ``defer``), and
retries an outcome that was not confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import NotReplicated

WORKER_CALLS = frozenset(("complete", "fail", "defer"))
"""The script calls a durable worker waits on: the outcomes it records."""


@dataclass(frozen=True, slots=True)
class Durability:
    """How many replicas must confirm a write, and how long to wait for them.

    Args:
        replicas: replicas that must have the write (at least 1).
        timeout: seconds Redis waits for them (``WAIT``'s timeout) before the call raises
            :class:`~redisjobs.errors.NotReplicated`.
    """

    replicas: int = 1
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.replicas < 1 or not 0 < self.timeout <= 60:
            raise ValueError("durable needs replicas >= 1 and 0 < timeout <= 60 s")

    @property
    def command(self) -> tuple[str, int, int]:
        """The ``WAIT`` command sent after each call."""
        return ("WAIT", self.replicas, max(1, round(self.timeout * 1000)))

    def confirmed(self, reply: object, acked: object) -> object:
        """`reply`, once `acked` (``WAIT``'s reply) shows enough replicas have it.

        Raises:
            NotReplicated: fewer replicas confirmed the write within the timeout.
        """
        if isinstance(acked, int) and acked >= self.replicas:
            return reply
        raise NotReplicated(
            f"the write reached the master but {acked} of {self.replicas} replica(s) confirmed "
            f"it within {self.timeout:g} s: a failover now may lose it; it is safe to send "
            "again (an enqueue with the same job id writes nothing twice)"
        )


def durability(durable: bool | Durability, *, embedded: bool) -> Durability | None:
    """The :class:`Durability` a ``durable`` argument asks for (True: one replica, 1 s).

    Raises:
        ValueError: durability asked of the embedded backend, which has no replicas.
    """
    if durable is False:
        return None
    if embedded:
        raise ValueError("durable writes need a Redis with replicas; memory:// has none")
    return Durability() if durable is True else durable
