"""Edges of a flow between queues: hand-overs, at least once, each with one effect.

A job and a parent of another queue live in different hash slots (on a Redis Cluster, maybe on
different nodes), so no one script can record the parent's end and act on the dependent. The
parent's outcome script writes a hand-over to its own queue's ``handover`` stream in the same
script that records the outcome; whoever delivers it (the worker that recorded the outcome, at
once, or any worker's reclaim tick later) runs ``resolve`` on the dependent's queue and then
deletes the entry. A delivery may happen twice (a worker dies between the two steps, or two
deliver the same entry): ``resolve`` closes an edge once, so the second has no effect
(docs/architecture.md, "Flows").

At enqueue, the client links a new job to each parent of another queue after writing the job
(``link``), and hands over itself the end of a parent that had ended already.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import deps
from .cancelling import cancel_and_wait
from .connection import Backoff
from .errors import UnknownDependency
from .keys import QueueKeys
from .roundtrips import Flow, ScriptCall, cmd, run
from .wire import EnqueueRow

if TYPE_CHECKING:
    from .scripts import Scripts

log = logging.getLogger("redisjobs.handover")

DELIVER_BATCH = 100
"""Hand-overs read per round trip."""

MAX_ROUNDS = 100
"""Batches one delivery takes at most (cascades included); a tick later takes the rest."""

_ENDED = frozenset({b"completed", b"failed", b"cancelled"})


def _foreign(row: EnqueueRow, queue: str) -> list[tuple[str, str]]:
    spec = row.rule("depends_on") if row.rules else None
    return deps.foreign(deps.decode(str(spec)), queue) if spec else []


def check_parents_flow(keys: QueueKeys, rows: Sequence[EnqueueRow]) -> Flow[None]:
    """Make sure each parent of `rows` in another queue than `keys`' exists (the script checks
    those of the job's own queue).

    Raises:
        UnknownDependency: one does not (nothing was written).
    """
    wanted = [pair for row in rows for pair in _foreign(row, keys.queue)]
    if not wanted:
        return
    found = yield [cmd("exists", QueueKeys(q).job(j)) for q, j in wanted]
    for (queue, job_id), n in zip(wanted, found, strict=True):
        if not n:
            raise UnknownDependency(f"unknown dependency: no job {job_id} in queue {queue}")


def link_flow(keys: QueueKeys, rows: Sequence[EnqueueRow], created: Sequence[object]) -> Flow[None]:
    """Link each job of `rows` that was written (or existed: a re-sent enqueue links again, to
    no further effect) to its parents of other queues, and hand over the end of those that
    ended already (a parent gone since the check counts as failed)."""
    for row, made in zip(rows, created, strict=True):
        if made is not True and made is not False:  # a unique duplicate: nothing was written
            continue
        for queue, job_id in _foreign(row, keys.queue):
            ref = f"{queue}/{job_id}"
            status, value = yield ScriptCall(
                "link", QueueKeys(queue), [job_id, f"{keys.queue}/{row.job_id}"]
            )
            if status == b"missing":
                status, value = b"failed", b"no such job (it expired or was deleted)"
            if status in _ENDED:
                handed = yield ScriptCall("resolve", keys, [row.job_id, ref, status, value])
                if handed:
                    yield from deliver_flow(keys)


def deliver_flow(keys: QueueKeys) -> Flow[int]:
    """Deliver the hand-overs waiting in `keys`' handover stream, and those their delivery
    writes in turn (a cascade through queues); returns how many were delivered."""
    todo, delivered = [keys], 0
    for _ in range(MAX_ROUNDS):
        if not todo:
            break
        source = todo.pop()
        (entries,) = yield [cmd("xrange", source.handover, "-", "+", count=DELIVER_BATCH)]
        for _entry, fields in entries:
            target = _target(fields)
            if target is not None:
                args = [fields[b"c"], fields[b"p"], fields[b"o"], fields.get(b"v", b"")]
                if (yield ScriptCall("resolve", target, args)):
                    todo.append(target)
                delivered += 1
        if entries:
            yield [cmd("xdel", source.handover, *(entry for entry, _ in entries))]
        if len(entries) == DELIVER_BATCH:
            todo.append(source)
    return delivered


def _target(fields: dict[bytes, bytes]) -> QueueKeys | None:
    """The queue a hand-over goes to; None (and a warning: the entry is dropped) when it is
    not one our scripts would write."""
    try:
        if not {b"c", b"p", b"o"} <= fields.keys():
            raise ValueError("fields missing")
        return QueueKeys(fields[b"q"].decode())
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        log.warning("dropping a malformed hand-over %r: %s", fields, exc)
        return None


class Courier:
    """A worker's deliverer of hand-overs: at once when an outcome script of this worker wrote
    some (:meth:`kick`), and every `interval` s for those whose writer died before delivering.

    Args:
        redis: the command connection.
        scripts: the scripts on it.
        keys: the worker's queue (its stream is the one the loop looks at).
        interval: seconds between looks (the reclaim interval: as soon as a dead worker's
            jobs are taken over, so are its undelivered hand-overs).
    """

    def __init__(self, redis: Redis, scripts: Scripts, keys: QueueKeys, interval: float) -> None:
        self._redis, self._scripts, self._keys = redis, scripts, keys
        self._interval = interval
        self._kicked: set[QueueKeys] = set()
        self._task: asyncio.Task[None] | None = None
        scripts.handed = self.kick

    def kick(self, keys: QueueKeys) -> None:
        """Deliver the hand-overs of `keys` soon (in a task of its own)."""
        self._kicked.add(keys)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._deliver_kicked(), name="handover")

    async def _deliver_kicked(self) -> None:
        backoff = Backoff(f"hand over from {self._keys.queue}", log)
        while self._kicked:
            keys = self._kicked.pop()
            try:
                await run(self._redis, deliver_flow(keys), self._scripts)
            except (RedisError, OSError) as exc:  # the loop takes them later
                await backoff.failed(exc)
                return
            backoff.ok()

    async def aclose(self) -> None:
        """Stop a delivery under way (what it had not deleted is delivered again, by a tick of
        this queue's workers, to no further effect)."""
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def run(self) -> None:
        """Deliver what was left in the queue's stream, every `interval` (jittered), for ever."""
        backoff = Backoff(f"hand over from {self._keys.queue}", log)
        while True:
            await asyncio.sleep(self._interval * random.uniform(0.8, 1.0))
            try:
                await run(self._redis, deliver_flow(self._keys), self._scripts)
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            backoff.ok()
