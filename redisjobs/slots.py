"""The job slots of one worker, shared by the loops that fill them.

The fetcher and the reclaim loop both lease jobs into the same `concurrency` slots; the jobs
free them when they end. One object holds the count and the wake-up event that tells the
fetcher to look again (a slot was freed, work arrived in this process, or the worker stops),
so that no loop has to poke another's events.

A worker over several queues gives each queue a :class:`~redisjobs.arbiter.Lane` instead: the
same interface over one :class:`~redisjobs.arbiter.Arbiter` that shares a single `concurrency`
between the queues (:meth:`Slots.reserve`, :meth:`Slots.want` and :meth:`Slots.settle` are
what the arbitration needs; here they cost nothing).
"""

from __future__ import annotations

import asyncio


class Slots:
    """How many jobs a worker runs, and how many more it may lease now.

    Args:
        concurrency: jobs run at once at most.
        batch_size: jobs leased per fetch at most.

    Attributes:
        running: jobs running now (leased and launched, outcome maybe not yet recorded).
        closed: the worker stops: no slot is free any more.
        wake: set when the fetcher should look again (cleared by the fetcher).
        shared: whether other queues share these slots (a lane of an arbiter).
    """

    __slots__ = ("batch_size", "closed", "concurrency", "running", "wake")

    shared = False

    def __init__(self, concurrency: int, batch_size: int) -> None:
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.running = 0
        self.closed = False
        self.wake = asyncio.Event()

    def free(self) -> int:
        """Jobs to lease next: the free slots, up to `batch_size` (0 once closed)."""
        return 0 if self.closed else min(self.concurrency - self.running, self.batch_size)

    def reserve(self) -> int:
        """What the fetcher may lease now, held for it until :meth:`settle` (here: free())."""
        return self.free()

    def want(self) -> None:
        """The fetcher looks for work (a lane asks the arbiter for slots; here: nothing)."""

    def settle(self, more: bool) -> None:
        """The fetch is over: `more` work may be ready (a lane gives back what it did not
        lease; here: nothing)."""

    def take(self) -> None:
        """A job was launched into a slot."""
        self.running += 1

    def release(self) -> None:
        """A job left its slot: the fetcher may lease another."""
        self.running -= 1
        self.wake.set()

    def close(self) -> None:
        """Lease nothing more (the worker stops); wakes the fetcher so that it sees it."""
        self.closed = True
        self.wake.set()
