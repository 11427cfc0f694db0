"""RateLimited: a job that raises it runs again later without using an attempt (defer.lua),
and with pause=True holds its limit key, or its queue, as long. Declined: an executor hands the
job back for another worker the same way, with no deferral counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from redisjobs import Client, Declined, JobStatus, RateLimited, UniqueMode, runs
from redisjobs.executors import ANY_KIND, ExecContext
from redisjobs.keys import QueueKeys
from redisjobs.scripts import Scripts
from tests import jobs
from tests.conftest import WorkerFactory, log_events, planned
from tests.test_scripts import deliver, read


async def test_a_rate_limited_job_runs_again_later_under_the_same_attempt(
    client: Client, worker: WorkerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    observed: list[tuple[str, str, str, str, float]] = []
    monkeypatch.setattr(runs, "JOB_OBSERVERS", [lambda *seen: observed.append(seen)])
    await worker(functions=[jobs.rate_limited_once])
    marker = str(tmp_path / "first-run")
    job = await client.enqueue(
        "call", {"fn": "rate_limited_once", "args": [marker, 0.3]}, max_retries=0
    )
    assert await client.wait(job.id, timeout=5) == "done"  # no retries, yet it ran twice
    done = await client.get(job.id)
    assert done is not None and done.status is JobStatus.COMPLETED
    assert done.attempt == 1 and done.error is None and done.failure is None
    evs = await log_events(client, job.id)
    assert [e.type for e in evs] == ["enqueued", "started", "deferred", "started", "completed"]
    _, first, deferred, again, _ = evs
    assert first.attempt == deferred.attempt == again.attempt == 1
    assert deferred.data["due"] - deferred.ts in planned(client, 300)
    assert again.ts >= deferred.data["due"]
    assert deferred.data["deferrals"] == 1 and deferred.data["paused"] is False
    assert [o for q, _, _, o, _ in observed if q == client.queue] == ["deferred", "completed"]
    stats = await client.stats()
    assert (stats["deferred"], stats["failed"], stats["retried"], stats["completed"]) == (
        1,
        0,
        0,
        1,
    )


async def test_defer_is_fenced_by_the_lease(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w1")
    before = await client.redis.hgetall(keys.job(d.job_id))
    assert await scripts.defer(keys, "w1", d.job_id, d.lease - 1, 1000) == ("stale", 0)
    assert await client.redis.hgetall(keys.job(d.job_id)) == before
    outcome, due = await scripts.defer(keys, "w1", d.job_id, d.lease, 1000)
    assert outcome == "deferred" and due > 0
    # re-sent after a lost reply: the job no longer runs under that lease
    assert await scripts.defer(keys, "w1", d.job_id, d.lease, 1000) == ("dup", 0)
    job = await client.get(d.job_id)
    assert job is not None and job.status is JobStatus.SCHEDULED and job.attempt == 0
    assert await client.redis.zscore(keys.delayed, d.job_id) == due
    assert (await client.stats())["deferred"] == 1


async def test_pause_holds_the_queue_or_the_job_s_key_never_shortening(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    plain, keyed, third = await deliver(client, scripts, "w1", 3)
    await client.redis.hset(keys.job(keyed.job_id), "limit_key", "tenant-a")
    await scripts.defer(keys, "w1", plain.job_id, plain.lease, 5000, pause=True)
    assert 4000 < await client.redis.pttl(keys.hold) <= 5000
    assert await client.redis.exists(keys.key_hold("tenant-a")) == 0
    await scripts.defer(keys, "w1", keyed.job_id, keyed.lease, 8000, pause=True)
    assert 7000 < await client.redis.pttl(keys.key_hold("tenant-a")) <= 8000
    assert 4000 < await client.redis.pttl(keys.hold) <= 5000  # the queue's hold untouched
    await scripts.defer(keys, "w1", third.job_id, third.lease, 1000, pause=True)
    assert await client.redis.pttl(keys.hold) > 3000  # a shorter hold leaves the longer one


async def test_without_pause_nothing_is_held(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w1")
    await scripts.defer(keys, "w1", d.job_id, d.lease, 5000)
    assert await client.redis.exists(keys.hold) == 0


async def test_a_job_deferred_too_often_fails_for_good(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w1")
    await client.redis.hset(keys.job(d.job_id), "deferrals", 100)
    assert await scripts.defer(keys, "w1", d.job_id, d.lease, 1000) == ("failed", 0)
    job = await client.get(d.job_id)
    assert job is not None and job.status is JobStatus.FAILED and job.attempt == 1
    assert job.error is not None and "deferred 100 times" in job.error
    assert await client.retry(d.job_id)  # run again from the dead letters: a fresh count
    assert await client.redis.hget(keys.job(d.job_id), "deferrals") is None


def test_retry_after_must_be_a_number_of_seconds() -> None:
    assert RateLimited(30).retry_after == 30.0
    assert RateLimited(10**9).retry_after == 86400.0  # cut to a day
    assert RateLimited(2, pause=True).pause is True
    for bad in (-1, float("nan"), float("inf"), "30"):
        with pytest.raises(ValueError, match="retry_after must be a number of seconds"):
            RateLimited(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "locked"), [("while_queued", True), ("until_done", True), ("until_start", False)]
)
async def test_unique_locks_go_as_a_retry_s_would(
    client: Client, scripts: Scripts, keys: QueueKeys, mode: UniqueMode, locked: bool
) -> None:
    job = await client.enqueue("call", 1, unique=mode, unique_key="u-1")
    [d] = await scripts.start(keys, "w1", await read(client, "w1"))
    assert d.job_id == job.id
    outcome, _ = await scripts.defer(keys, "w1", d.job_id, d.lease, 60_000)
    assert outcome == "deferred"
    holder = await client.redis.get(keys.unique("u-1"))
    assert holder == (job.id.encode() if locked else None)
    dup = await client.enqueue("call", 1, unique=mode, unique_key="u-1")
    assert dup.duplicate is locked


class _Picky:
    """Declines each job the first time it sees it, then runs it; of kind `kind`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.seen: list[tuple[str, str]] = []

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        self.seen.append((job_id, ctx.kind))
        if len([j for j, _ in self.seen if j == job_id]) == 1:
            raise Declined(0.2)
        return ctx.kind


async def test_a_declined_job_comes_back_uncounted_and_any_kind_takes_the_rest(
    client: Client, worker: WorkerFactory
) -> None:
    picky = _Picky(ANY_KIND)
    await worker(executors=[picky])
    job = await client.enqueue("whatever", {})
    assert await client.wait(job.id, timeout=5) == "whatever"  # kind "*" ran a kind it lacks
    done = await client.get(job.id)
    assert done is not None and done.attempt == 1 and done.error is None
    evs = await log_events(client, job.id)
    assert [e.type for e in evs] == ["enqueued", "started", "deferred", "started", "completed"]
    assert evs[2].data["deferrals"] == 0 and evs[2].data["due"] - evs[2].ts in planned(client, 200)
    assert (await client.stats())["failed"] == 0


async def test_declining_never_fails_a_job(
    client: Client, scripts: Scripts, keys: QueueKeys
) -> None:
    [d] = await deliver(client, scripts, "w1")
    await client.redis.hset(keys.job(d.job_id), "deferrals", 100)
    outcome, due = await scripts.defer(keys, "w1", d.job_id, d.lease, 1000, counted=False)
    assert outcome == "deferred" and due > 0
    assert await client.redis.hget(keys.job(d.job_id), "deferrals") == b"100"
    assert Declined(10**9).retry_after == 86400.0
    with pytest.raises(ValueError, match="retry_after must be a number of seconds"):
        Declined(-1)
