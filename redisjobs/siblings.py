"""The workers of a worker's other queues, run and stopped with the worker that owns them.

A :class:`~redisjobs.Worker` over several queues (an app whose tasks use several, or
``queues=``) serves the first and owns one sibling worker per other queue: each has its own
leases, reclaim, pause and burst, all share one concurrency (a lane each of one
:class:`~redisjobs.arbiter.Arbiter`) and the executors (closed once, by the last of them). A
stop of the owner stops them; one that fails stops the owner, and so the rest; a burst owner
that ran out of work waits for its siblings to run out of theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .arbiter import Lane
    from .executors import ExecContext
    from .worker import Worker


class Siblings:
    """The sibling workers of one owner.

    Args:
        workers: the siblings (each built with ``handle_signals=False``).
    """

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def of(cls, owner: Worker, lanes: Sequence[Lane]) -> Siblings:
        """One sibling of `owner` per lane: its settings, its executors, the lane's queue."""
        from .worker import Worker  # a cycle at import time: worker.py imports this module

        workers = []
        for lane in lanes:
            sibling = Worker(
                owner.backend.url,
                queue=lane.queue,
                executors=owner.executors.all(),  # replaced below: one registry, closed once
                concurrency=owner.concurrency,
                batch_size=owner.batch_size,
                lease_ttl=owner.lease_ttl,
                poll_interval=owner.poll_interval,
                grace_period=owner.grace_period,
                max_deliveries=owner.max_deliveries,
                reclaim_interval=owner.reclaim_interval,
                handle_signals=False,
                context_class=owner.context_class,
                max_payload_bytes=owner.max_payload_bytes,
                burst=owner.burst,
                durable=owner.durable or False,
            )
            sibling.executors, sibling._app = owner.executors.share(), owner._app
            sibling.slots = lane  # one concurrency for all the queues
            # an operator's quiet or stop, read from any entry of the process, is the process's
            sibling.presence.quiet, sibling.presence.stop = owner.quiet, owner.stop
            workers.append(sibling)
        return cls(workers)

    def start(self, on_failure: Callable[[], None]) -> None:
        """Run them in the background; `on_failure` is called when one ends on an error."""

        def ended(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                on_failure()

        for worker in self.workers:
            task = asyncio.create_task(worker.run(), name=f"worker {worker.keys.queue}")
            task.add_done_callback(ended)
            self._tasks.append(task)

    def stop(self, *, now: bool = False) -> None:
        """Stop them (see :meth:`Worker.stop`)."""
        for worker in self.workers:
            worker.stop(now=now)

    async def finish(self) -> BaseException | None:
        """Wait for them to end; the first error one ended on, if any."""
        outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
        return next((o for o in outcomes if isinstance(o, BaseException)), None)

    async def wait_ready(self) -> None:
        """Return once every one is connected and fetching."""
        for worker in self.workers:
            await worker.wait_ready()

    def unready(self) -> list[str]:
        """The queues of those not ready (see :meth:`Worker.unready`)."""
        return [queue for worker in self.workers for queue in worker.unready()]

    def health(self) -> dict[str, str | None]:
        """Each one's queue -> why it is unhealthy, or None (see :meth:`Worker.health`)."""
        return {q: why for worker in self.workers for q, why in worker.health().items()}

    @property
    def busy(self) -> int:
        """Jobs they run now."""
        return sum(w.busy for w in self.workers)

    def context(self, job_id: str) -> ExecContext | None:
        """The context of a job running on one of them (None: on none)."""
        for worker in self.workers:
            ctx = worker.context(job_id)
            if ctx is not None:
                return ctx
        return None
