"""`redisjobs status` of a job in a flow: the flow's tree under the job's fields, and in its
--json document, run as real processes against the session's redis-server."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from redisjobs import Client, FlowRun, Worker, chain
from tests.test_cli import ok

pytestmark = pytest.mark.timeout(60)


async def step_add(x: int, previous_result: int = 0) -> int:
    return x + previous_result


async def step_fail(previous_result: Any = None) -> None:
    raise RuntimeError("the step broke\nwith a second line")


async def _failed_chain(redis_url: str, queue: str) -> FlowRun:
    """A chain of three whose middle step failed (so its last failed by dependency)."""
    async with Client(redis_url, queue=queue) as client:
        run = await client.enqueue_flow(
            chain(
                ("call", {"fn": "step_add", "args": [1]}),
                ("call", {"fn": "step_fail"}),
                ("call", {"fn": "step_add", "args": [2]}),
            )
        )
        worker = Worker(
            redis_url,
            queue=queue,
            functions=[step_add, step_fail],
            burst=True,
            handle_signals=False,
        )
        await asyncio.wait_for(worker.run(), 20)
    return run


async def test_status_prints_the_flows_tree(redis_url: str, queue: str) -> None:
    run = await _failed_chain(redis_url, queue)
    first, middle, last = (j.id for j in run.jobs)
    text = await asyncio.to_thread(ok, "status", middle, "--redis", redis_url)
    fields, _, tree = text.partition("\nflow (each job over the jobs it waits for):\n")
    rows = dict(re.findall(r"^(\w[\w ]*?)  +(.*)$", fields, re.MULTILINE))
    assert rows["status"] == "failed" and rows["waits for"] == first
    assert rows["waited for by"] == last
    lines = tree.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"  {last}  failed  step_add(2)  dependency {middle} failed")
    assert lines[1].startswith(f"    {middle}  failed  step_fail()  RuntimeError")
    assert "the step broke with a second line" in lines[1] and lines[1].endswith("<- this job")
    assert lines[2] == f"      {first}  completed  step_add(1)"

    document = json.loads(
        await asyncio.to_thread(ok, "status", middle, "--redis", redis_url, "--json")
    )
    assert document["depends_on"] == [first] and document["dependents"] == [last]
    assert document["flow"] == last and document["tree"]["cut"] is False
    root = document["tree"]["root"]
    chain_ = [root, root["children"][0], root["children"][0]["children"][0]]
    assert [(n["id"], n["status"], n["failure"]) for n in chain_] == [
        (last, "failed", "dependency"),
        (middle, "failed", "error"),
        (first, "completed", None),
    ]
    assert chain_[2]["children"] == []


async def test_status_of_a_job_outside_any_flow_has_no_tree(redis_url: str, queue: str) -> None:
    async with Client(redis_url, queue=queue) as client:
        job = await client.enqueue("call", {"fn": "step_add", "args": [1]})
    text = await asyncio.to_thread(ok, "status", job.id, "--redis", redis_url)
    assert "flow (" not in text and "waits for" not in text
    document = json.loads(
        await asyncio.to_thread(ok, "status", job.id, "--redis", redis_url, "--json")
    )
    assert "tree" not in document and document["depends_on"] == []
