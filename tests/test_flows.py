"""Jobs that wait for others: depends_on and its policies, chains, groups, chords, flows, their
cancel and retry, across queues, with real workers on both backends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from redisjobs import (
    Client,
    ExecContext,
    Job,
    JobCancelled,
    JobFailed,
    JobStatus,
    ParentPolicy,
    chain,
    chord,
    flow,
    group,
    step,
)
from redisjobs.composition import StepLike
from redisjobs.handover import Courier
from tests.conftest import WorkerFactory, log_events

STEPS: dict[str, list[str]] = {}


async def plus(x: int, previous_result: int | None = None) -> int:
    """A chain's step: its own number plus what the step before returned."""
    return x + (previous_result or 0)


async def total(ctx: ExecContext) -> int:
    """A fan-in: the sum of the results of the jobs it waited for."""
    return sum((await ctx.children_results()).values())


async def failures(ctx: ExecContext) -> dict[str, Any]:
    """What a job that runs despite a failed parent sees of them."""
    return {"results": await ctx.children_results(), "failures": await ctx.children_failures()}


async def boom(previous_result: Any = None) -> None:
    raise RuntimeError("boom")


FLAKY: set[str] = set()


async def flaky(ctx: ExecContext, previous_result: int = 0) -> int:
    """Fails the first time it runs for a job, then adds one."""
    if ctx.job_id not in FLAKY:
        FLAKY.add(ctx.job_id)
        raise RuntimeError("first run fails")
    return previous_result + 1


async def hold(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "held"


FUNCTIONS = [plus, total, failures, boom, hold, flaky]


class Payload:
    """Kind ``payload``: returns the payload it was given."""

    kind = "payload"

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        return payload


def call(fn: str, *args: Any) -> tuple[str, dict[str, Any]]:
    return ("call", {"fn": fn, "args": list(args)})


async def _status(client: Client, job_id: str, *wanted: str, queue: str | None = None) -> Job:
    async with asyncio.timeout(10):
        while True:
            job = await client.get(job_id, queue=queue)
            if job is not None and job.status in wanted:
                return job
            await asyncio.sleep(0.02)


async def test_a_job_waits_for_its_parents_then_runs_with_their_results(
    client: Client, worker: WorkerFactory
) -> None:
    a = await client.enqueue("call", {"fn": "plus", "args": [1]})
    b = await client.enqueue("call", {"fn": "plus", "args": [2]})
    c = await client.enqueue("call", {"fn": "total"}, depends_on=[a.id, b])
    assert c.status is JobStatus.WAITING
    stored = await client.get(c.id)
    assert stored is not None and stored.status is JobStatus.WAITING
    assert stored.depends_on == (a.id, b.id)  # ids of its own queue, queue/id of others
    parent = await client.get(a.id)
    assert parent is not None and parent.dependents == (c.id,)
    assert (await client.stats())["waiting"] == 1
    await worker(functions=FUNCTIONS)
    assert await client.wait(c.id, timeout=10) == 3
    types = [ev.type for ev in await log_events(client, c.id)]
    assert types == ["enqueued", "ready", "started", "completed"]


async def test_a_parent_that_completed_already_releases_the_job_at_enqueue(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCTIONS)
    a = await client.enqueue("call", {"fn": "plus", "args": [5]})
    assert await client.wait(a.id, timeout=10) == 5
    c = await client.enqueue("call", {"fn": "total"}, depends_on=[a])
    assert await client.wait(c.id, timeout=10) == 5


async def test_a_chain_of_four_passes_each_result_to_the_next(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCTIONS, executors=[Payload()])
    given = await client.enqueue_flow(chain(call("plus", 7), ("payload", None)))
    assert await client.wait(given.id, timeout=10) == {"previous_result": 7}
    run = await client.enqueue_flow(
        chain(call("plus", 1), call("plus", 10), call("plus", 100), call("plus", 1000))
    )
    assert [j.status for j in run.jobs] == ["pending", "waiting", "waiting", "waiting"]
    assert run.id == run.jobs[-1].id and run.last == [run.id]
    assert await client.wait(run.id, timeout=10) == 1111
    for job in run.jobs:
        stored = await client.get(job.id)
        assert stored is not None and stored.flow == run.id  # queue/id when of another queue


async def test_a_hundred_wide_group_fans_in_to_a_chord_callback(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCTIONS, concurrency=20)
    run = await client.enqueue_flow(
        chord(group([call("plus", i) for i in range(100)]), call("total"))
    )
    assert len(run.jobs) == 101
    assert await client.wait(run.id, timeout=20) == sum(range(100))


async def test_a_flow_nests_chains_and_groups(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCTIONS, concurrency=4)
    tree = flow(
        call("total"),
        [chain(call("plus", 1), call("plus", 2)), group(call("plus", 10), call("plus", 20))],
    )
    run = await client.enqueue_flow(chain(call("plus", 1000), tree))
    # 1000 -> (1 + 1000 -> 2 + 1001) and (10 + 1000, 20 + 1000): the callback sums its children
    assert await client.wait(run.id, timeout=20) == 1003 + 1010 + 1020


@pytest.mark.parametrize(("policy", "status"), [("fail", "failed"), ("cancel", "cancelled")])
async def test_a_failed_step_ends_the_rest_of_its_chain_with_a_reason(
    client: Client, worker: WorkerFactory, policy: str, status: str
) -> None:
    await worker(functions=FUNCTIONS)
    steps: list[StepLike] = [
        call("plus", 1),
        call("boom"),
        step(*call("plus", 2), on_parent_failure=policy),
    ]
    run = await client.enqueue_flow(chain(*steps, step(*call("plus", 3), on_parent_failure=policy)))
    with pytest.raises(JobFailed if policy == "fail" else JobCancelled):
        await client.wait(run.id, timeout=10)
    failed, third, last = [await client.get(j.id) for j in run.jobs[1:]]
    assert failed is not None and failed.status is JobStatus.FAILED
    for job, parent in ((third, failed), (last, third)):
        assert (
            job is not None
            and parent is not None
            and job.status == status
            and job.failure == "dependency"
        )
        assert job.error is not None and job.error.startswith(f"dependency {parent.id} ")
        assert "RuntimeError: boom" in job.error
        assert job.started_at is None  # it never ran
    dead = await client.redis.zrange(client.keys().dead, 0, -1)
    assert dead == [failed.id.encode()]  # the failure was its parent's: one dead letter


@pytest.mark.parametrize("policy", ["ignore", "run"])
async def test_ignore_and_run_run_the_job_despite_a_failed_parent_and_tell_it(
    client: Client, worker: WorkerFactory, policy: ParentPolicy
) -> None:
    # ignore: it waits for the other parent (0.3 s) and gets its result; run: it runs at
    # once, long before the other parent (30 s) ends
    seconds = 0.3 if policy == "ignore" else 30
    a = await client.enqueue("call", {"fn": "boom"})
    b = await client.enqueue("call", {"fn": "hold", "args": [seconds]})
    c = await client.enqueue(
        "call", {"fn": "failures"}, depends_on=[a, b], on_parent_failure=policy
    )
    await worker(functions=FUNCTIONS, concurrency=2)
    seen = await client.wait(c.id, timeout=10)
    assert seen["results"] == ({b.id: "held"} if policy == "ignore" else {})
    assert list(seen["failures"]) == [a.id] and "boom" in seen["failures"][a.id]
    if policy == "run":
        assert await client.cancel(b.id)


async def test_a_cancelled_parent_cancels_the_job_waiting_for_it(client: Client) -> None:
    a = await client.enqueue("call", {"fn": "plus", "args": [1]}, delay=60)
    c = await client.enqueue("call", {"fn": "total"}, depends_on=[a])
    assert await client.cancel(a.id)
    job = await client.get(c.id)
    assert job is not None and job.status is JobStatus.CANCELLED and job.failure == "dependency"
    assert job.error == f"dependency {a.id} cancelled: cancelled"


async def test_cancel_flow_cancels_what_has_not_run(client: Client, worker: WorkerFactory) -> None:
    await worker(functions=FUNCTIONS)
    run = await client.enqueue_flow(chain(call("hold", 30), call("plus", 1), call("plus", 2)))
    await _status(client, run.jobs[0].id, "running")
    assert await client.cancel_flow(run.id) == 3
    for job in run.jobs:
        await _status(client, job.id, "cancelled")
    assert await client.cancel_flow(run.id) == 0  # nothing left to cancel


async def test_steps_on_other_queues_hand_over_across_queues(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    other = f"{queue}-other"
    await worker(functions=FUNCTIONS, queue=None, queues=[queue, other])
    run = await client.enqueue_flow(
        chain(call("plus", 1), step(*call("plus", 10), queue=other), call("plus", 100))
    )
    assert [j.queue for j in run.jobs] == [queue, other, queue]
    assert await client.wait(run.id, timeout=10) == 111
    # a parent of another queue that ended already is handed over at enqueue
    late = await client.enqueue("call", {"fn": "total"}, depends_on=[run.jobs[1]])
    assert await client.wait(late.id, timeout=10) == 11
    assert await client.redis.xlen(client.keys(other).handover) == 0  # all delivered


async def test_a_foreign_parent_that_fails_fails_the_job_across_queues(
    client: Client, worker: WorkerFactory, queue: str
) -> None:
    other = f"{queue}-x"
    a = await client.enqueue("call", {"fn": "boom"}, queue=other)
    c = await client.enqueue("call", {"fn": "total"}, depends_on=[a])
    await worker(functions=FUNCTIONS, queue=None, queues=[other, queue])
    with pytest.raises(JobFailed, match=f"dependency {other}/{a.id} failed"):
        await client.wait(c.id, timeout=10)


async def test_a_re_sent_hand_over_has_one_effect(client: Client, queue: str) -> None:
    other = f"{queue}-y"
    a = await client.enqueue("call", {"fn": "plus", "args": [1]}, queue=other)
    c = await client.enqueue("call", {"fn": "total"}, depends_on=[a], job_id="waits-1")
    again = await client.enqueue("call", {"fn": "total"}, depends_on=[a], job_id="waits-1")
    assert again.duplicate  # a re-sent enqueue links again, to no further effect
    assert await client.redis.smembers(client.keys(other).job_dependents(a.id)) == {
        f"{queue}/{c.id}".encode()
    }
    _, scripts = await client._conn()
    args = [c.id, f"{other}/{a.id}", "completed", b"\x07"]
    for _ in range(2):
        await scripts.call(_resolve(client, args))
    job = await client.get(c.id)
    assert job is not None and job.status is JobStatus.PENDING
    ready = [ev.type for ev in await log_events(client, c.id)].count("ready")
    assert ready == 1


def _resolve(client: Client, args: list[Any]) -> Any:
    from redisjobs.roundtrips import ScriptCall

    return ScriptCall("resolve", client.keys(), args)


async def test_the_tree_shows_each_job_with_its_status(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCTIONS)
    run = await client.enqueue_flow(chord(group(call("plus", 1), call("plus", 2)), call("total")))
    await client.wait(run.id, timeout=10)
    tree = await client.flow_tree(run.id)
    assert tree is not None and not tree.cut
    shape = [
        (depth, node.id, node.job.status if node.job else None) for depth, node in tree.root.walk()
    ]
    assert shape == [(0, run.id, "completed")] + [(1, j.id, "completed") for j in run.jobs[:2]]
    assert await client.flow_tree("no-such-job") is None


async def test_bad_dependencies_are_refused_with_nothing_written(client: Client) -> None:
    a = await client.enqueue("call", {"fn": "plus", "args": [1]})
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"depends_on": ["nope"]}, ValueError, "unknown dependency: no job nope"),
        ({"depends_on": ["elsewhere/nope"]}, ValueError, "no job nope in queue elsewhere"),
        ({"depends_on": [a.id], "delay": 5}, ValueError, "cannot be delayed"),
        ({"depends_on": [a.id], "on_parent_failure": "maybe"}, ValueError, "on_parent_failure"),
        ({"on_parent_failure": "fail"}, ValueError, "needs depends_on"),
        ({"depends_on": []}, ValueError, "1-1000 jobs"),
        ({"depends_on": "abc"}, TypeError, "a list of jobs"),
        ({"depends_on": ["a/b/c"]}, ValueError, "invalid"),
        ({"depends_on": ["x y"]}, ValueError, "invalid"),
        ({"depends_on": [f"{i}" for i in range(1001)]}, ValueError, "1-1000 jobs"),
        ({"depends_on": [3]}, TypeError, "depends_on takes"),
    ]
    before = await client.redis.dbsize()
    for opts, error, message in cases:
        with pytest.raises(error, match=message):
            await client.enqueue("call", {"fn": "total"}, **opts)
    assert await client.redis.dbsize() == before
    with pytest.raises(TypeError, match="previous_result"):
        await client.enqueue_flow(chain(call("plus", 1), ("call", [1, 2])))
    with pytest.raises(TypeError, match="depends_on"):  # a tick's job waits for no job
        await client.schedule("ticks", "call", {"fn": "total"}, every=60, depends_on=[a.id])
    with pytest.raises(TypeError, match="a step is"):
        chain(call("plus", 1), 42)  # type: ignore[arg-type]
    assert await client.redis.dbsize() == before


async def test_the_script_refuses_a_bad_depends_on_rule_itself(client: Client) -> None:
    from redisjobs.wire import EnqueueRow

    _, scripts = await client._conn()
    base = EnqueueRow("raw-1", "call", b"\x80", 0, 0, 1.0, 0.0, 0, 1000)
    for spec in ("fail:", "maybe:x", "fail:a/b/c", "fail:x fail:x", " ", "fail:q/-x", "fail:q!/x"):
        with pytest.raises(Exception, match=r"invalid depends_on|unknown dependency"):
            await scripts.enqueue(client.keys(), [base._replace(rules=(("depends_on", spec),))])
    assert await client.get("raw-1") is None


async def test_a_job_outside_any_flow_pays_nothing_for_flows(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCTIONS)
    a = await client.enqueue("call", {"fn": "plus", "args": [1]})
    await client.wait(a.id, timeout=10)
    fields = await client.redis.hkeys(client.keys().job(a.id))
    assert not {b"depends_on", b"dependents", b"flow", b"deps"} & set(fields)
    keys = client.keys()
    for key in (
        keys.job_deps(a.id),
        keys.job_results(a.id),
        keys.job_dependents(a.id),
        keys.handover,
    ):
        assert not await client.redis.exists(key)


async def test_removing_a_flow_job_deletes_its_side_keys(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCTIONS)
    run = await client.enqueue_flow(chain(call("plus", 1), call("plus", 2)))
    await client.wait(run.id, timeout=10)
    keys = client.keys()
    first, last = run.jobs
    assert await client.redis.exists(keys.job_dependents(first.id), keys.job_results(last.id)) == 2
    assert await client.redis.pttl(keys.job_results(last.id)) > 0  # they expire with the job
    assert await client.remove(first.id) and await client.remove(last.id)
    assert not await client.redis.exists(
        keys.job_dependents(first.id), keys.job_deps(last.id), keys.job_results(last.id)
    )


async def test_drain_and_obliterate_tell_the_jobs_of_other_queues(
    client: Client, queue: str
) -> None:
    other = f"{queue}-z"
    a = await client.enqueue("call", {"fn": "plus", "args": [1]})
    b = await client.enqueue("call", {"fn": "total"}, depends_on=[a])
    waits = await client.enqueue("call", {"fn": "total"}, depends_on=[b], queue=other)
    assert await client.drain() == 1  # the pending parent; the job waiting for it ends with it
    middle = await client.get(b.id)
    assert middle is not None and middle.status is JobStatus.CANCELLED
    job = await client.get(waits.id, queue=other)
    assert job is not None and job.status is JobStatus.CANCELLED
    assert job.error == (
        f"dependency {queue}/{b.id} cancelled: dependency {a.id} cancelled: drained"
    )
    lone = await client.enqueue("call", {"fn": "total"}, depends_on=[f"{other}/{waits.id}"])
    assert lone.status is JobStatus.CANCELLED  # its parent had ended: closed at once
    c = await client.enqueue("call", {"fn": "plus", "args": [1]})
    late = await client.enqueue("call", {"fn": "total"}, depends_on=[c], queue=other)
    await client.obliterate()
    job = await client.get(late.id, queue=other)
    assert job is not None and job.status is JobStatus.CANCELLED
    assert job.error == f"dependency {queue}/{c.id} cancelled: obliterated"


async def test_a_childs_own_policy_overrides_its_parents(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(functions=FUNCTIONS, concurrency=3)
    ignored = flow(
        call("failures"),
        [step(*call("boom"), ignore_dependency_on_failure=True), call("plus", 2)],
    )
    run = await client.enqueue_flow(ignored)
    seen = await client.wait(run.id, timeout=10)
    assert list(seen["failures"]) == [run.jobs[0].id] and list(seen["results"].values()) == [2]
    strict = flow(
        step(*call("failures"), on_parent_failure="ignore"),
        [step(*call("boom"), fail_parent_on_failure=True), call("plus", 2)],
    )
    run = await client.enqueue_flow(strict)
    with pytest.raises(JobFailed, match="dependency"):
        await client.wait(run.id, timeout=10)
    with pytest.raises(ValueError, match="one of"):
        await client.enqueue_flow(
            flow(
                call("total"),
                [
                    step(
                        *call("boom"),
                        fail_parent_on_failure=True,
                        ignore_dependency_on_failure=True,
                    )
                ],
            )
        )


async def test_a_hand_over_its_writer_did_not_deliver_is_delivered_by_a_tick(
    client: Client, worker: WorkerFactory, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = f"{queue}-w"
    parent = await client.enqueue("call", {"fn": "plus", "args": [4]}, queue=other)
    waits = await client.enqueue("call", {"fn": "total"}, depends_on=[parent])
    await worker(functions=FUNCTIONS)  # serves the dependent's queue
    # the parent's worker records the outcome but dies before it delivers the hand-over
    with monkeypatch.context() as patched:
        patched.setattr(Courier, "kick", lambda self, keys: None)
        silent = await worker(functions=FUNCTIONS, queue=other, reclaim_interval=3600)
        assert await client.wait(parent.id, queue=other, timeout=10) == 4
        silent.stop(now=True)
    assert await client.redis.xlen(client.keys(other).handover) == 1
    job = await client.get(waits.id)
    assert job is not None and job.status is JobStatus.WAITING
    await worker(functions=FUNCTIONS, queue=other, reclaim_interval=0.2)  # its tick delivers
    assert await client.wait(waits.id, timeout=10) == 4
    assert await client.redis.xlen(client.keys(other).handover) == 0


async def test_cancel_flow_counts_the_jobs_a_cancel_ended_in_turn(client: Client) -> None:
    # the tree reaches the group's members through their shared parent once: cancelling that
    # parent ends the members not cancelled yet, which count all the same
    run = await client.enqueue_flow(
        chain(call("plus", 1), chord(group(call("plus", 2), call("plus", 3)), call("total")))
    )
    assert await client.cancel_flow(run.id) == 4
    assert {(await client.get(j.id)).status for j in run.jobs} == {"cancelled"}  # type: ignore[union-attr]
