"""Flows on the dashboard and in the HTTP API: a job page draws its flow's tree, waiting jobs
are counted and cancellable, jobs carry their edges, enqueue takes depends_on, and
``/api/jobs/{id}/tree`` answers the tree nested."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from redisjobs import Client, FlowRun, JobStatus, chain, flowshow
from tests.conftest import WorkerFactory

from .conftest import csrf_of

NODE = re.compile(
    r'data-flow-job="([^"]+)" data-depth="(\d+)"><div class="flow-job( current)?">\s*'
    r'<span class="badge st-(\w+)">'
)


async def step_add(x: int, previous_result: int = 0) -> int:
    """A chain's step: its number plus what the step before returned."""
    return x + previous_result


async def step_fail(previous_result: Any = None) -> None:
    raise RuntimeError("the step broke")


def _call(fn: str, *args: Any) -> tuple[str, dict[str, Any]]:
    return ("call", {"fn": fn, "args": list(args)})


async def _three(client: Client, middle: str = "step_add") -> FlowRun:
    """A chain of three steps, the middle one `middle`."""
    return await client.enqueue_flow(
        chain(_call("step_add", 1), _call(middle), _call("step_add", 2))
    )


def _nodes(html: str) -> list[tuple[str, int, bool, str]]:
    """(queue/id, depth, highlighted, status) of each job of the page's flow tree."""
    return [(ref, int(d), bool(cur), st) for ref, d, cur, st in NODE.findall(html)]


async def _ended(client: Client, job_id: str) -> None:
    async with asyncio.timeout(10):
        while True:
            job = await client.get(job_id)
            if job is not None and job.status.is_final:
                return
            await asyncio.sleep(0.02)


async def test_a_chain_of_three_is_drawn_nested_with_the_job_highlighted(
    client: Client, dash: httpx.AsyncClient
) -> None:
    run = await _three(client)
    q = run.queue
    first, middle, last = (f"{q}/{j.id}" for j in run.jobs)
    page = await dash.get(f"/queues/{q}/jobs/{run.jobs[1].id}")
    assert page.status_code == 200
    html = page.text
    # the flow's last job at the root, each over the job it waits for; this page's job marked
    assert _nodes(html) == [
        (last, 0, False, "waiting"),
        (middle, 1, True, "waiting"),
        (first, 2, False, "pending"),
    ]
    panel = html[html.index("flow-panel") : html.index("</section>", html.index("flow-panel"))]
    assert panel.count("<ul") == 3 + 1  # the tree's three levels, and the dependents' list
    assert f'href="/queues/{q}/jobs/{run.jobs[0].id}"' in panel and "step_add(1)" in panel
    waiting_for_it = panel[panel.index("Waiting for this job") :]
    assert run.jobs[2].id in waiting_for_it and run.jobs[0].id not in waiting_for_it
    # a waiting job can be cancelled, and its page stays live
    assert "Cancel job" in html and "data-stream=" in html
    detail = await dash.get(f"/queues/{q}/jobs/{run.jobs[1].id}/detail")
    assert _nodes(detail.text) == _nodes(html)


async def test_a_job_outside_any_flow_draws_no_tree(
    client: Client, dash: httpx.AsyncClient
) -> None:
    job = await client.enqueue("call", {"fn": "step_add", "args": [1]})
    html = (await dash.get(f"/queues/{client.queue}/jobs/{job.id}")).text
    assert "flow-panel" not in html and _nodes(html) == []


async def test_a_failed_step_shows_its_chain_failed_by_dependency(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    run = await _three(client, middle="step_fail")
    await worker(functions=[step_add, step_fail])
    await _ended(client, run.id)
    q = run.queue
    html = (await dash.get(f"/queues/{q}/jobs/{run.jobs[0].id}")).text
    assert [(d, cur, st) for _, d, cur, st in _nodes(html)] == [
        (0, False, "failed"),
        (1, False, "failed"),
        (2, True, "completed"),
    ]
    errors = re.findall(r'<span class="flow-error small">([^<]*)</span>', html)
    assert errors[0].startswith(f"dependency: dependency {run.jobs[1].id} failed")
    assert errors[1].startswith("error: ") and "the step broke" in errors[1]
    assert len(errors) == 2  # the completed step shows none


async def test_a_tree_deeper_than_a_view_shows_is_cut(
    client: Client, dash: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flowshow, "MAX_DEPTH", 2)
    run = await _three(client)
    html = (await dash.get(f"/queues/{run.queue}/jobs/{run.id}")).text
    assert [d for _, d, _, _ in _nodes(html)] == [0, 1] and "data-flow-cut" in html
    tree = (await dash.get(f"/api/jobs/{run.id}/tree")).json()
    assert tree["cut"] is True and tree["root"]["children"][0]["children"] == []
    monkeypatch.setattr(flowshow, "MAX_DEPTH", 3)
    html = (await dash.get(f"/queues/{run.queue}/jobs/{run.id}")).text
    assert len(_nodes(html)) == 3 and "data-flow-cut" not in html


async def test_waiting_jobs_are_counted_listed_and_cancelled(
    client: Client, dash: httpx.AsyncClient
) -> None:
    run = await _three(client)
    q = run.queue
    overview = (await dash.get("/")).text
    card = overview[overview.index(f'<section class="card" data-queue="{q}">') :]
    tile = re.search(r'class="count st-waiting[^"]*".*?"counts.waiting">(\d+)<', card)
    assert tile is not None and tile.group(1) == "2"
    listing = (await dash.get(f"/queues/{q}", params={"status": "waiting"})).text
    assert set(re.findall(r'<tr data-job="([^"]+)"', listing)) == {j.id for j in run.jobs[1:]}
    assert listing.count('data-confirm="Cancel job ') == 2  # each row's button
    page = await dash.get(f"/queues/{q}/jobs/{run.id}")
    form = {"csrf": csrf_of(page.text), "next": f"/queues/{q}/jobs/{run.id}"}
    done = await dash.post(f"/queues/{q}/jobs/{run.id}/cancel", data=form)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=cancelled")
    job = await client.get(run.id)
    assert job is not None and job.status is JobStatus.CANCELLED


# -- the HTTP API ---------------------------------------------------------------------------------


async def test_enqueue_with_depends_on_and_the_jobs_edges(
    client: Client, dash: httpx.AsyncClient
) -> None:
    q, other = client.queue, f"{client.queue}-other"
    a = (await dash.post(f"/api/queues/{q}/jobs", json={"kind": "call", "payload": {}})).json()
    b = (await dash.post(f"/api/queues/{other}/jobs", json={"kind": "call"})).json()
    options = {"depends_on": [a["id"], f"{other}/{b['id']}"], "on_parent_failure": "ignore"}
    sent = {"kind": "call", "payload": {"fn": "step_add"}, "options": options}
    made = await dash.post(f"/api/queues/{q}/jobs", json=sent)
    assert made.status_code == 202, made.text
    c = made.json()
    assert c["status"] == "waiting" and c["depends_on"] == options["depends_on"]
    assert c["dependents"] == [] and c["flow"] is None
    parent = (await dash.get(f"/api/jobs/{a['id']}")).json()
    assert parent["dependents"] == [c["id"]]
    foreign = (await dash.get(f"/api/jobs/{b['id']}", params={"queue": other})).json()
    assert foreign["dependents"] == [f"{q}/{c['id']}"]
    # the policy was taken: a failed parent is ignored, the job waits for the other
    stored = await client.redis.hgetall(client.keys().job_deps(c["id"]))
    assert set(stored.values()) == {b"ignore"}
    tree = (await dash.get(f"/api/jobs/{c['id']}/tree")).json()
    assert tree["cut"] is False
    root = tree["root"]
    assert (root["id"], root["queue"], root["status"], root["name"]) == (
        c["id"], q, "waiting", "step_add",
    )  # fmt: skip
    kids = [(n["id"], n["queue"], n["status"], n["children"]) for n in root["children"]]
    assert kids == [(a["id"], q, "pending", []), (b["id"], other, "pending", [])]


async def test_a_flows_tree_over_the_api(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    run = await _three(client, middle="step_fail")
    await worker(functions=[step_add, step_fail])
    await _ended(client, run.id)
    tree = (await dash.get(f"/api/jobs/{run.id}/tree", params={"queue": run.queue})).json()
    last = tree["root"]
    middle = last["children"][0]
    first = middle["children"][0]
    assert [n["status"] for n in (last, middle, first)] == ["failed", "failed", "completed"]
    assert [n["failure"] for n in (last, middle, first)] == ["dependency", "error", None]
    assert last["error"].startswith(f"dependency {run.jobs[1].id} failed")
    assert first["children"] == [] and first["name"] == "step_add"
    job = (await dash.get(f"/api/jobs/{run.jobs[1].id}")).json()
    assert job["flow"] == run.id and job["depends_on"] == [run.jobs[0].id]
    assert job["dependents"] == [run.id]
    missing = await dash.get("/api/jobs/no-such-job/tree")
    assert missing.status_code == 404 and "no job" in missing.json()["error"]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"depends_on": "abc"}, "depends_on must be a list of job ids"),
        ({"depends_on": {"abc": 1}}, "depends_on must be a list of job ids"),
        ({"depends_on": [1]}, "depends_on must be a list of job ids"),
        ({"depends_on": []}, "depends_on takes 1-1000 jobs"),
        ({"depends_on": ["a b"]}, "invalid job id 'a b'"),
        ({"depends_on": ["PARENT"], "on_parent_failure": "explode"}, "must be one of cancel"),
        ({"on_parent_failure": "fail"}, "on_parent_failure needs depends_on"),
        ({"depends_on": ["PARENT"], "delay": 5}, "cannot be delayed too"),
    ],
)
async def test_bad_dependencies_are_422_and_write_nothing(
    client: Client, dash: httpx.AsyncClient, options: dict[str, Any], said: str
) -> None:
    parent = await client.enqueue("call", {})
    if options.get("depends_on") == ["PARENT"]:
        options = {**options, "depends_on": [parent.id]}
    sent = {"kind": "call", "options": options}
    answer = await dash.post(f"/api/queues/{client.queue}/jobs", json=sent)
    assert answer.status_code == 422 and said in answer.json()["error"], answer.text
    assert (await client.stats())["waiting"] == 0


@pytest.mark.parametrize("ref", ["no-such-job", "elsewhere/nope"])
async def test_a_parent_that_does_not_exist_is_404(
    client: Client, dash: httpx.AsyncClient, ref: str
) -> None:
    sent = {"kind": "call", "options": {"depends_on": [ref]}}
    answer = await dash.post(f"/api/queues/{client.queue}/jobs", json=sent)
    assert answer.status_code == 404, answer.text
    queue, _, job_id = ref.rpartition("/")
    said = f"unknown dependency: no job {job_id} in queue {queue or client.queue}"
    assert answer.json()["error"] == said
    assert (await client.stats())["waiting"] == 0
