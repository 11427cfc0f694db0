"""The Lua transitions, loaded once and called through typed wrappers.

Each ``<name>.lua`` in this package is one state transition (docs/architecture.md, "Scripts"),
a function of one Redis function library with ``_lib.lua`` at its head
(:mod:`redisjobs.scripts.library`). Functions are called by name, and their library is loaded
when Redis lacks it (see :mod:`redisjobs.scriptcall`), so a restarted Redis needs nothing from
us. This module is the only place that sees raw script replies: every wrapper turns them into
typed values.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Collection, Container, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ..errors import QueueFull, UnknownDependency
from ..handover import deliver_flow
from ..keys import QueueKeys
from ..roundtrips import Flow, Routed, ScriptCall, run
from ..scriptcall import Arg, AsyncCaller, Function, call_embedded, load
from ..wire import row_args
from .library import Library, library

if TYPE_CHECKING:
    from ..durability import Durability
    from ..wire import EnqueueRow

NAMES = (
    "enqueue",
    "start",
    "heartbeat",
    "complete",
    "fail",
    "defer",
    "promote",
    "reclaim",
    "cancel",
    "finish_waiting",
    "release",
    "progress",
    "retry",
    "run_now",
    "remove",
    "purge",
    "drain",
    "obliterate",
    "schedule",
    "unschedule",
    "due_schedules",
    "fire",
    "pause",
    "resume",
    "link",
    "resolve",
)

HANDED = 3
"""``complete``'s code for a job recorded whose end was handed over to jobs of other queues."""

PROMOTE_BATCH = 100
"""Due jobs ``promote.lua`` moves per call. A job costs it 7-20 µs of Redis time (a quiet and
a busy 2-core machine), so a call stays near 1-2 ms, far under the 10 ms any one script may
block Redis for, and a backlog of any size goes in a series of short calls with other clients'
commands in between."""


class Delivery(NamedTuple):
    """A job handed to this worker under a fresh lease by ``start`` or ``reclaim``.

    ``_lib.lua``'s ``delivery`` returns these fields, in this order, for each job.
    """

    job_id: str
    lease: int
    attempt: int
    kind: str
    payload: bytes
    timeout_ms: int


def _text(value: bytes) -> str:
    return value.decode()


_DELIVERY_WIDTH = len(Delivery._fields)


def _delivery(values: Sequence[Any]) -> Delivery:
    job_id, lease, attempt, kind, payload, timeout_ms = values
    return Delivery(
        job_id=job_id.decode(),
        lease=int(lease),
        attempt=int(attempt),
        kind=kind.decode("utf-8", "replace"),
        payload=payload,
        timeout_ms=int(timeout_ms),
    )


class Started(list[Delivery]):
    """What a ``start`` call leased: its deliveries, and whether the queue is paused (then
    only jobs leased to this worker by an earlier call whose reply was lost), or how long a
    rate limit, max_running or hold keeps it from leasing more (ms, Redis's clock)."""

    paused: bool = False
    throttled_ms: int | None = None
    by_keys: bool = False
    """Throttled by limit keys only (not the queue's own rate or hold): a job of another
    key, enqueued meanwhile, could start at once."""


def _deliveries(reply: list[Any]) -> list[Delivery]:
    """The deliveries of a start or reclaim reply: their fields, one job after another."""
    return [
        _delivery(reply[i : i + _DELIVERY_WIDTH]) for i in range(0, len(reply), _DELIVERY_WIDTH)
    ]


def _pairs(items: Iterable[tuple[str, int]]) -> list[Arg]:
    out: list[Arg] = []
    for job_id, lease in items:
        out += (job_id, lease)
    return out


def enqueue_flow(
    keys: QueueKeys, rows: Sequence[EnqueueRow], meanwhile: Callable[[], object] | None = None
) -> Flow[list[bool | str]]:
    """Create jobs, one per row; True = created, False = one with its id exists (or its
    idempotency marker), else the id of the job that holds the row's unique lock.
    `meanwhile`: see :attr:`~redisjobs.roundtrips.ScriptCall.meanwhile`.

    Raises:
        QueueFull: the rows would bring the queue's backlog above its max_pending (nothing
            was written).
        UnknownDependency: a row depends on a job of the queue that does not exist (nothing
            was written).
    """
    try:
        reply = yield ScriptCall("enqueue", keys, row_args(rows), meanwhile)
    except ResponseError as exc:
        words = str(exc).split()
        if len(words) == 4 and words[0] == "QUEUEFULL":
            limit, backlog, adding = (int(w) for w in words[1:])
            raise QueueFull(keys.queue, limit, backlog, adding) from None
        if str(exc).startswith("unknown dependency"):  # only Redis can tell: nothing written
            raise UnknownDependency(str(exc)) from None
        raise
    return [x.decode() if isinstance(x, bytes) else bool(x) for x in reply]


def cancel_flow(keys: QueueKeys, job_id: str, token: str) -> Flow[str]:
    """Cancel a job: 'cancelled' | 'requested' | 'final' | 'missing' (see Scripts.cancel);
    the jobs of other queues waiting for it are told before it returns."""
    outcome = _text((yield ScriptCall("cancel", keys, [job_id, token])))
    if outcome == "handed":
        yield from deliver_flow(keys)
        return "cancelled"
    return outcome


def finish_waiting_flow(
    keys: QueueKeys, job_id: str, outcome: str, value: bytes | str
) -> Flow[str]:
    """Record by hand the outcome of a job that waits to run: 'done' | 'running' | 'final' |
    'missing' (see finish_waiting.lua); the jobs of other queues waiting for it are told
    before it returns."""
    answer = _text((yield ScriptCall("finish_waiting", keys, [job_id, outcome, value])))
    if answer == "handed":
        yield from deliver_flow(keys)
        return "done"
    return answer


def retry_flow(keys: QueueKeys, job_ids: Sequence[str]) -> Flow[int]:
    """Put failed or cancelled jobs back (see Scripts.retry); the jobs of other queues that
    ended because they did wait for them again before it returns."""
    revived, handed = yield ScriptCall("retry", keys, job_ids)
    if handed:
        yield from deliver_flow(keys)
    return int(revived)


def functions(lib: Library) -> dict[str, Function]:
    """Each transition's function in `lib`, by transition name."""
    return {n: Function(lib.function(n), lib.text) for n in NAMES}


class Scripts:
    """The transitions called on one Redis client, with one typed method per transition.

    Args:
        redis: the client the functions run on.
        embedded: True on the fakeredis backend (no connection pool to call through).
        durable: the replicas that must confirm the calls named in `waits` (all by default)
            before they return (:mod:`redisjobs.durability`).
        cluster: True on a Redis Cluster (the library publishes sharded); implied by a
            client that routes to the queues' homes (:class:`~redisjobs.roundtrips.Routed`).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        embedded: bool = False,
        durable: Durability | None = None,
        waits: Collection[str] = NAMES,
        cluster: bool = False,
    ) -> None:
        self._redis = redis
        # On a cluster, each call goes to its queue's home (redisjobs.homes)
        self._homes = redis.homes if isinstance(redis, Routed) else None
        self._library = library(NAMES, sharded=cluster or self._homes is not None)
        self._fns = functions(self._library)
        self.handed: Callable[[QueueKeys], None] | None = None
        """Called with a queue whose handover stream an outcome script just wrote to (see
        :mod:`redisjobs.handover`): its owner delivers them."""
        # On a real Redis, the calls take the fast path of redisjobs.scriptcall
        self._caller = None if embedded else AsyncCaller(redis)
        self._waits = {name: durable for name in waits} if durable is not None else {}

    async def preload(self) -> None:
        """Load the library now (and open a connection for it), so that a first call is one
        round trip: a heartbeat must not pay a connect and a library load on a slow link."""
        await load(self._redis, self._library.text)

    def call(self, step: ScriptCall) -> Awaitable[Any]:
        """Run one script call of a flow; its raw reply, to await."""
        fn = self._fns[step.name]
        caller = self._caller if self._homes is None else self._homes.caller(step.keys.prefix)
        if caller is not None:
            wait = self._waits.get(step.name) if self._waits else None
            return caller(fn, (step.keys.prefix,), step.args, step.meanwhile, wait)
        if step.meanwhile is not None:
            step.meanwhile()
        return call_embedded(self._redis, fn, (step.keys.prefix,), step.args)

    async def _call(self, name: str, keys: QueueKeys, args: Sequence[Arg]) -> Any:
        return await self.call(ScriptCall(name, keys, args))

    async def enqueue(self, keys: QueueKeys, rows: Sequence[EnqueueRow]) -> list[bool | str]:
        """Create jobs, one per row (see :func:`enqueue_flow`)."""
        return await run(self._redis, enqueue_flow(keys, rows), self)

    async def start(
        self,
        keys: QueueKeys,
        worker: str,
        entries: Sequence[tuple[str, str]] = (),
        *,
        read: int = 0,
    ) -> Started:
        """Lease the jobs of stream entries (entry id, job id) that `worker` read, and up to
        `read` more jobs the script finds itself (new entries, or jobs of a priority).

        On a paused queue it leases nothing new, and the result says so (``paused``); held
        back by a limit, it says for how long (``throttled_ms``)."""
        args: list[Arg] = [worker, read]
        for msg, job_id in entries:
            args += (msg, job_id)
        reply = await self._call("start", keys, args)
        head = reply[0] if reply else None
        paused = head == b"paused"
        throttled = head in (b"throttled", b"throttled_keys")
        started = Started(_deliveries(reply[2 * throttled + paused :]))
        started.paused = paused
        if throttled:
            started.throttled_ms = int(reply[1])
            started.by_keys = head == b"throttled_keys"
        return started

    async def heartbeat(
        self, keys: QueueKeys, worker: str, lease_ttl_ms: int, held: Iterable[tuple[str, int]]
    ) -> list[tuple[str, str]]:
        """Extend leases; return (job id, 'lost' | 'cancel') for jobs to stop."""
        reply = await self._call("heartbeat", keys, [worker, lease_ttl_ms, *_pairs(held)])
        return [(reply[i].decode(), reply[i + 1].decode()) for i in range(0, len(reply), 2)]

    async def complete(
        self,
        keys: QueueKeys,
        worker: str,
        results: Sequence[tuple[str, int, bytes]],
        logged: Container[str] | None = None,
    ) -> list[int]:
        """Record results: per job 1 recorded, 2 re-sent duplicate, 0 stale lease.

        `logged` names the jobs whose run wrote log lines (None: any may have); the others'
        log key is left alone when this was their first delivery (they have none).
        """
        args: list[Arg] = [worker]
        for job_id, lease, result in results:
            args += (job_id, lease, result, 1 if logged is None or job_id in logged else 0)
        codes = [int(x) for x in await self._call("complete", keys, args)]
        if HANDED in codes and self.handed is not None:
            self.handed(keys)
        return codes

    async def fail(
        self,
        keys: QueueKeys,
        worker: str,
        job_id: str,
        lease: int,
        error: str,
        *,
        mode: str = "error",
        defer_ms: int = -1,
    ) -> tuple[str, int]:
        """Record a failed or cancelled run; returns (outcome, retry due time in ms).

        `mode` is why it failed (a :data:`~redisjobs.job.FailureReason`), kept as the job's
        `failure`: ``error`` and ``timeout`` retry while attempts are left, ``fatal`` never
        does, ``cancel`` records it cancelled; the script refuses any other.
        """
        args: list[Arg] = [worker, job_id, lease, error, mode, defer_ms, random.random()]
        outcome, due, *handed = await self._call("fail", keys, args)
        if handed and handed[0] and self.handed is not None:
            self.handed(keys)
        return outcome.decode(), int(due)

    async def defer(
        self,
        keys: QueueKeys,
        worker: str,
        job_id: str,
        lease: int,
        retry_after_ms: int,
        *,
        pause: bool = False,
        counted: bool = True,
    ) -> tuple[str, int]:
        """Send a running job back to wait `retry_after_ms` without using an attempt (it
        raised RateLimited); with `pause`, hold its limit key (or the queue) as long; not
        `counted` (its executor declined it), without counting a deferral.

        Returns:
            (outcome, due time in ms): 'deferred', 'failed' (deferred too many times),
            'stale' or 'dup'; the due time only for 'deferred'.
        """
        args: list[Arg] = [worker, job_id, lease, retry_after_ms, int(pause), int(counted)]
        outcome, due = await self._call("defer", keys, args)
        return outcome.decode(), int(due)

    async def promote(self, keys: QueueKeys, limit: int = PROMOTE_BATCH) -> tuple[int, int, int]:
        """Move due jobs to ready; returns (moved, next due ms or -1, Redis now ms)."""
        moved, next_due, now = await self._call("promote", keys, [limit])
        return int(moved), int(next_due), int(now)

    async def reclaim(
        self,
        keys: QueueKeys,
        worker: str,
        *,
        lease_ttl_ms: int,
        count: int,
        max_deliveries: int,
        sweep: int = 100,
    ) -> tuple[list[Delivery], bool]:
        """Take over jobs idle past their holder's lease and sweep orphans.

        Returns:
            The jobs to run, and whether more are up for reclaim than `count` allowed.
        """
        args: list[Arg] = [worker, lease_ttl_ms, count, max_deliveries, sweep]
        owed, *rows = await self._call("reclaim", keys, args)
        return _deliveries(rows), bool(owed)

    async def cancel(self, keys: QueueKeys, job_id: str, token: str = "") -> str:
        """Cancel a job: 'cancelled' | 'requested' | 'final' | 'missing'.

        `token` names the request: re-sent with the same token after a lost reply, it answers
        'cancelled' again instead of 'final'.
        """
        return await run(self._redis, cancel_flow(keys, job_id, token), self)

    async def release(self, keys: QueueKeys, worker: str, held: Iterable[tuple[str, int]]) -> int:
        """Hand jobs (and unstarted PEL entries) back; returns how many."""
        return int(await self._call("release", keys, [worker, *_pairs(held)]))

    async def progress(
        self, keys: QueueKeys, job_id: str, lease: int | None, value: float, mp: bytes, msg: str
    ) -> bool:
        """Record progress of a running job (any lease when `lease` is None)."""
        args: list[Arg] = [job_id, "" if lease is None else lease, repr(float(value)), mp, msg]
        return bool(await self._call("progress", keys, args))

    async def run_now(self, keys: QueueKeys, job_id: str) -> bool:
        """Make a scheduled job pending now; False when it is not scheduled."""
        return bool(await self._call("run_now", keys, [job_id]))

    async def retry(self, keys: QueueKeys, job_ids: Sequence[str]) -> int:
        """Run failed jobs again under their ids; returns how many were put back."""
        return await run(self._redis, retry_flow(keys, job_ids), self) if job_ids else 0
