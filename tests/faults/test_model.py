"""A stateful model test of the Lua transitions, on a real redis-server and on fakeredis.

Hypothesis drives random sequences of enqueue (at several priorities, under a max_pending
bound or not) / start / heartbeat / complete / fail / defer / cancel / promote / reclaim /
release / pause / resume and ages leases
(``XCLAIM ... IDLE``, as a worker that went silent), with stale leases and re-sent calls mixed
in. After every step the keyspace audit must be clean, and the model checks what the scripts
report: a terminal job never changes again, and only the current lease's outcome counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from redis.exceptions import ResponseError

from redisjobs import Client, QueueFull, UniqueMode
from redisjobs.job import FINAL_STATUSES
from redisjobs.keys import GROUP
from redisjobs.scripts import Delivery, Scripts
from redisjobs.testing import RedisServer, unique_queue
from tests.faults.audit import audit

pytestmark = pytest.mark.faults

WORKERS = st.sampled_from(["w1", "w2", "w3"])
HOUR = 3600.0  # every delay and retry delay: see time_passes


class ScriptsModel(RuleBasedStateMachine):
    """The scripts against a model of each job's status and current lease."""

    url = ""  # set per backend below

    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.client = Client(self.url, queue=unique_queue("model"))
        self.run(self.client.connect())
        self.keys = self.client.keys()
        self.scripts = Scripts(self.client.redis, embedded=self.client.backend.embedded)
        self.leases: dict[str, Delivery] = {}  # job -> its current delivery
        self.final: dict[str, str] = {}  # job -> terminal status, once reached
        self.owner: dict[str, str] = {}  # job -> the worker holding its current lease

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.runner.close()

    async def _status(self, job_id: str) -> str:
        value: Any = await self.client.redis.hget(self.keys.job(job_id), "status")
        return value.decode() if value else "missing"

    def status(self, job_id: str) -> str:
        return str(self.run(self._status(job_id)))

    @initialize()
    def group(self) -> None:
        with contextlib.suppress(ResponseError):
            self.run(self.client.redis.xgroup_create(self.keys.ready, GROUP, id="0", mkstream=True))

    # -- producers ----------------------------------------------------------------------------

    @rule(
        target=jobs,
        delay=st.sampled_from([None, None, HOUR]),
        retries=st.integers(0, 2),
        priority=st.sampled_from([100, 100, 0, 7, 300]),
    )
    def enqueue(self, delay: float | None, retries: int, priority: int) -> Any:
        return self._enqueue(delay=delay, max_retries=retries, retry_delay=HOUR, priority=priority)

    def _enqueue(self, **options: Any) -> Any:
        """Enqueue a job; its id, or none when the queue is full (nothing was written)."""
        try:
            job = self.run(self.client.enqueue("call", {"n": 1}, **options))
        except QueueFull as full:
            assert full.backlog + 1 > full.limit
            return multiple()
        return str(job.id)

    @rule(limit=st.sampled_from([None, 1, 3, 10]))
    def max_pending(self, limit: int | None) -> None:
        """The queue's backlog bound, set or taken away (its other limits stay)."""
        if limit is None:
            self.run(self.client.redis.hdel(self.keys.limits, "max_pending"))
        else:
            self.run(self.client.set_limit(max_pending=limit))

    @rule(
        target=jobs,
        key=st.sampled_from(["k1", "k2", "t:k3"]),
        delay=st.sampled_from([None, None, HOUR]),
        priority=st.sampled_from([100, 100, 5]),
    )
    def enqueue_keyed(self, key: str, delay: float | None, priority: int) -> Any:
        """A job with a limit key: it waits in its key's set, served by the key schedule."""
        return self._enqueue(
            delay=delay, max_retries=1, retry_delay=HOUR, priority=priority, limit_key=key
        )

    @rule(
        key=st.sampled_from([None, "*", "k1", "t:*"]),
        rate=st.sampled_from([None, 1.0, 1000.0]),
        max_running=st.sampled_from([None, 1, 2]),
        clear=st.booleans(),
    )
    def limit(
        self, key: str | None, rate: float | None, max_running: int | None, clear: bool
    ) -> None:
        """A limit set, changed or cleared at run time (a rate of 1 per 60 s holds keys back)."""
        if clear or (key is not None and rate is None and max_running is None):
            self.run(self.client.clear_limit(key=key))
        elif key is None:
            self.run(self.client.set_limit(rate=rate or 1000.0, per=60.0 if rate == 1.0 else 1.0))
        else:
            per = 60.0 if rate == 1.0 else 1.0
            self.run(self.client.set_limit(key=key, rate=rate, per=per, max_running=max_running))

    @rule(paused=st.booleans())
    def pause(self, paused: bool) -> None:
        self.run(self.client.pause() if paused else self.client.resume())

    @rule(
        target=jobs,
        mode=st.sampled_from(["until_start", "until_done", "while_queued"]),
        key=st.sampled_from(["a", "b"]),
        keep=st.sampled_from([None, 1, 3]),
        delay=st.sampled_from([None, HOUR]),
    )
    def enqueue_unique(
        self, mode: UniqueMode, key: str, keep: int | None, delay: float | None
    ) -> Any:
        """A unique job (a duplicate answers the holder), keeping few jobs of each outcome."""
        counts = None if keep is None else {"count": keep}
        return self._enqueue(
            delay=delay,
            max_retries=1,
            retry_delay=HOUR,
            unique=mode,
            unique_key=key,
            keep_completed=counts,
            keep_failed=counts,
        )

    @rule(job_id=jobs)
    def cancel(self, job_id: str) -> None:
        outcome = self.run(self.scripts.cancel(self.keys, job_id))
        if job_id in self.final:
            assert outcome in ("final", "missing")

    # -- workers ------------------------------------------------------------------------------

    @rule(worker=WORKERS, count=st.integers(1, 4), itself=st.booleans())
    def start(self, worker: str, count: int, itself: bool) -> None:
        """`start` reads itself (the busy path), or is given what a blocking read returned."""
        if itself:
            started = self.run(self.scripts.start(self.keys, worker, read=count))
        else:
            reply: Any = self.run(
                self.client.redis.xreadgroup(GROUP, worker, {self.keys.ready: ">"}, count=count)
            )
            entries = [
                (m.decode(), f.get(b"id", b"").decode()) for m, f in (reply[0][1] if reply else [])
            ]
            started = self.run(self.scripts.start(self.keys, worker, entries))
        for d in started:
            assert d.job_id not in self.final, f"a finished job was started: {d.job_id}"
            self._leased(d, worker)

    def _leased(self, d: Delivery, worker: str) -> None:
        old = self.leases.get(d.job_id)
        assert old is None or d.lease > old.lease  # fencing tokens only grow
        self.leases[d.job_id] = d
        self.owner[d.job_id] = worker

    @precondition(lambda self: bool(self.leases))
    @rule(data=st.data(), resend=st.booleans())
    def complete(self, data: st.DataObject, resend: bool) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.leases)))
        d = self.leases[job_id]
        worker = self.owner[job_id]
        [code] = self.run(self.scripts.complete(self.keys, worker, [(job_id, d.lease, b"\xc0")]))
        if code == 1:
            assert job_id not in self.final
            self.final[job_id] = "completed"
        if resend:
            [again] = self.run(
                self.scripts.complete(self.keys, worker, [(job_id, d.lease, b"\xc0")])
            )
            assert again in (0, 2)

    @precondition(lambda self: bool(self.leases))
    @rule(data=st.data(), mode=st.sampled_from(["error", "fatal", "cancel"]))
    def fail(self, data: st.DataObject, mode: str) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.leases)))
        d = self.leases[job_id]
        outcome, _ = self.run(
            self.scripts.fail(self.keys, self.owner[job_id], job_id, d.lease, "boom", mode=mode)
        )
        if outcome in ("failed", "cancelled"):
            assert job_id not in self.final
            self.final[job_id] = outcome

    @precondition(lambda self: bool(self.leases))
    @rule(data=st.data(), wait=st.sampled_from([0, 3_600_000]), pause=st.booleans())
    def defer(self, data: st.DataObject, wait: int, pause: bool) -> None:
        """The run raised RateLimited: back to wait, its attempt given back."""
        job_id = data.draw(st.sampled_from(sorted(self.leases)))
        d = self.leases[job_id]
        outcome, _ = self.run(
            self.scripts.defer(self.keys, self.owner[job_id], job_id, d.lease, wait, pause=pause)
        )
        assert outcome in ("deferred", "stale", "dup", "failed")
        if outcome == "deferred":
            assert job_id not in self.final
            attempt: Any = self.run(self.client.redis.hget(self.keys.job(job_id), "attempt"))
            assert int(attempt) == d.attempt - 1

    @precondition(lambda self: bool(self.leases))
    @rule(data=st.data())
    def stale_outcome(self, data: st.DataObject) -> None:
        """An outcome under a lease older than the current one is always rejected."""
        job_id = data.draw(st.sampled_from(sorted(self.leases)))
        d = self.leases[job_id]
        if d.lease < 2:
            return
        [code] = self.run(self.scripts.complete(self.keys, "old", [(job_id, d.lease - 1, b"\xc0")]))
        assert code == 0

    @rule(worker=WORKERS)
    def heartbeat(self, worker: str) -> None:
        held = [(j, d.lease) for j, d in self.leases.items() if self.owner[j] == worker]
        for _, action in self.run(self.scripts.heartbeat(self.keys, worker, 1_000_000, held)):
            assert action in ("lost", "cancel")

    @rule(worker=WORKERS)
    def release(self, worker: str) -> None:
        held = [(j, d.lease) for j, d in self.leases.items() if self.owner[j] == worker]
        self.run(self.scripts.release(self.keys, worker, held))

    @rule()
    def time_passes(self) -> None:
        """Every job waiting in `delayed` comes due. Nothing else does: each delay above is an
        hour, so what promote finds due never depends on how fast the steps ran (Hypothesis
        replays a case and must see the same outcomes)."""
        members: Any = self.run(self.client.redis.zrange(self.keys.delayed, 0, -1))
        if members:
            self.run(self.client.redis.zadd(self.keys.delayed, dict.fromkeys(members, 0), xx=True))

    @rule()
    def promote(self) -> None:
        self.run(self.scripts.promote(self.keys))

    @precondition(lambda self: bool(self.leases))
    @rule(data=st.data())
    def age_lease(self, data: st.DataObject) -> None:
        """The owner went silent: its entry looks idle for a long time."""
        job_id = data.draw(st.sampled_from(sorted(self.leases)))
        msg: Any = self.run(self.client.redis.hget(self.keys.job(job_id), "msg"))
        if msg:
            stream = self.keys.stream_of(msg.decode())
            self.run(
                self.client.redis.xclaim(
                    stream, GROUP, self.owner[job_id], 0, [msg], idle=10**7, justid=True
                )
            )

    @rule(worker=WORKERS, max_deliveries=st.integers(1, 3))
    def reclaim(self, worker: str, max_deliveries: int) -> None:
        taken, _ = self.run(
            self.scripts.reclaim(
                self.keys, worker, lease_ttl_ms=1_000_000, count=10, max_deliveries=max_deliveries
            )
        )
        for d in taken:
            assert d.job_id not in self.final
            self._leased(d, worker)

    # -- after every step ---------------------------------------------------------------------

    @invariant()
    def consistent(self) -> None:
        problems = self.run(audit(self.client.redis, self.client.queue))
        assert problems == [], problems
        for job_id, status in self.final.items():
            now = self.status(job_id)
            assert now in (status, "missing"), f"{job_id} was {status}, is {now}"
        for job_id in list(self.leases):
            status = self.status(job_id)
            if status in FINAL_STATUSES and job_id not in self.final:
                self.final[job_id] = status  # cancelled, or failed by reclaim (poison)
            if status != "running":
                del self.leases[job_id]


@pytest.fixture(scope="module")
def model_server() -> Any:
    with RedisServer() as server:
        yield server


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_scripts_keep_the_invariants(backend: str, model_server: RedisServer) -> None:
    url = model_server.url if backend == "redis" else f"memory://model-{backend}"
    machine: Any = type("Model", (ScriptsModel,), {"url": url})
    machine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
    machine.TestCase().runTest()
