"""The Pyjobkit face worker's ``kinds`` and ``tags`` filters: a filtered worker runs its own
jobs and hands the others back, unharmed, for the workers whose filters let them through."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from redisjobs.pyjobkit import Engine, Worker
from redisjobs.pyjobkit.contracts import ExecContext, Executor
from redisjobs.pyjobkit.worker_filters import DECLINE_DELAY


class Echo(Executor):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ran: list[uuid.UUID] = []

    async def run(self, *, job_id: uuid.UUID, payload: Any, ctx: ExecContext) -> Any:
        self.ran.append(job_id)
        return dict(payload)


async def burst(engine: Engine, **filters: Any) -> None:
    """Run what is due now; a job a filter handed back is due again after DECLINE_DELAY, so
    wait that long first (a burst does not wait for jobs due later)."""
    await asyncio.sleep(DECLINE_DELAY * 2)
    worker = Worker(engine, poll_interval=0.01, **filters)
    worker.handle_signals = False
    await worker.run(once=True)


async def test_kinds_and_tags_keep_other_jobs_queued_for_other_workers(backend: Any) -> None:
    noop, other = Echo("noop"), Echo("other")
    async with Engine(backend=backend, executors=[noop, other]) as engine:
        match = await engine.enqueue(kind="noop", payload={"m": 1}, tags=["hi", "x"])
        wrong_kind = await engine.enqueue(kind="other", payload={}, tags=["hi"])
        wrong_tag = await engine.enqueue(kind="noop", payload={}, tags=["lo"])
        untagged = await engine.enqueue(kind="noop", payload={})
        await burst(engine, kinds=["noop"], tags=[" hi "])
        assert noop.ran == [match] and other.ran == []
        assert (await engine.get(match))["result"] == {"m": 1}
        for job in (wrong_kind, wrong_tag, untagged):
            record = await engine.get(job)
            assert record["status"] == "queued" and record["attempts"] == 0
        # an unfiltered worker takes what the first one handed back, with no attempt used
        await burst(engine)
        for job in (wrong_kind, wrong_tag, untagged):
            record = await engine.get(job)
            assert record["status"] == "success" and record["attempts"] == 1


async def test_a_filtered_worker_declines_a_kind_it_has_no_executor_for(backend: Any) -> None:
    async with Engine(backend=backend, executors=[Echo("noop")]) as producer:
        foreign = await producer.enqueue(kind="report", payload={"n": 1})
        await burst(producer, kinds=["noop"])
        assert (await producer.get(foreign))["status"] == "queued"  # not failed: not its kind
        await burst(producer, kinds=["report"])  # nor any executor for it
        assert (await producer.get(foreign))["status"] == "queued"
        reporter = Echo("report")
        producer.executors["report"] = reporter
        await burst(producer)
        assert reporter.ran == [foreign] and (await producer.get(foreign))["attempts"] == 1


def test_filters_are_lists_of_names(backend: Any) -> None:
    engine = Engine(backend=backend, executors=[Echo("noop")])
    with pytest.raises(TypeError, match="list of names"):
        Worker(engine, kinds="noop")
    with pytest.raises(ValueError, match="empty name"):
        Worker(engine, tags=["ok", " "])
    worker = Worker(engine, kinds=("noop",), tags=["a"])
    assert worker.kinds == frozenset({"noop"}) and worker.tags == frozenset({"a"})
    assert Worker(engine).kinds is None
