"""Flows in the dashboard: the job page's tree, the waiting status, the API's fields, enqueue
options and tree route, and the job page's live stream over a flow's jobs."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from typing import Any

import httpx

from redisjobs import Client, Job, chain, step
from redisjobs.dashboard import create_app
from redisjobs.flowview import MAX_PLAIN_DEPTH, Tree, TreeNode
from tests.conftest import WorkerFactory

from .conftest import csrf_of, live_http
from .test_sse import messages


async def plus(x: int, previous_result: int | None = None) -> int:
    """A chain's step: its number plus the step before's result."""
    return x + (previous_result or 0)


async def boom(previous_result: Any = None) -> None:
    raise RuntimeError("boom <b>")


async def hold(seconds: float, previous_result: Any = None) -> int:
    await asyncio.sleep(seconds)
    return 1


class _Outline(HTMLParser):
    """The flow panel's tree as (depth, text of the row, its badge, is current), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.depth = 0
        self.inside = False  # within the tree's div
        self.badge = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and a.get("class") == "flow-tree":
            self.inside = True
        elif not self.inside:
            return
        elif tag == "ul":
            self.depth += 1
        elif tag == "li":
            self.rows.append({"depth": self.depth, "text": "", "current": "class" in a})
        elif tag == "a" and self.rows:
            self.rows[-1]["href"] = a["href"]
        self.badge = tag == "span" and (a.get("class") or "").startswith("badge")

    def handle_endtag(self, tag: str) -> None:
        if self.inside and tag == "ul":
            self.depth -= 1
        if self.inside and tag == "div":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.rows:
            self.rows[-1]["text"] += data
            if self.badge:
                self.rows[-1]["status"] = data
                self.badge = False


def outline(html: str) -> list[dict[str, Any]]:
    parser = _Outline()
    parser.feed(html)
    return parser.rows


async def _ended(client: Client, job: Job) -> Job:
    async with asyncio.timeout(15):
        while True:
            now = await client.get(job.id, queue=job.queue)
            if now is not None and now.status.is_final:
                return now
            await asyncio.sleep(0.02)


async def test_a_chain_page_draws_its_tree_nested_with_statuses_and_links(
    client: Client, dash: httpx.AsyncClient
) -> None:
    run = await client.enqueue_flow(
        chain(
            ("call", {"fn": "plus", "args": [1]}),
            ("call", {"fn": "plus", "args": [2]}),
            ("call", {"fn": "plus", "args": [3]}),
        )
    )
    first, middle, last = run.jobs
    page = await dash.get(f"/queues/{client.queue}/jobs/{middle.id}")
    assert page.status_code == 200
    rows = outline(page.text)
    # The flow's last job on top, each job above the one it waited for.
    assert [(r["depth"], r["status"]) for r in rows] == [
        (1, "waiting"),
        (2, "waiting"),
        (3, "pending"),
    ]
    ids = [job.id for job in (last, middle, first)]
    assert [next(i for i in ids if i in r["text"]) for r in rows] == ids
    assert all("plus(" in r["text"] for r in rows)
    assert [r["current"] for r in rows] == [False, True, False]
    assert rows[2]["href"] == f"/queues/{client.queue}/jobs/{first.id}"
    # The jobs waiting for this one are listed; the first job's page lists the middle one.
    assert "Waiting for this job" in page.text
    first_page = (await dash.get(f"/queues/{client.queue}/jobs/{first.id}")).text
    waiting = first_page.split("Waiting for this job")[1]
    assert middle.id in waiting and last.id not in waiting
    # A job still waiting streams the flow's events; a lone job has no panel.
    assert f"/jobs/{middle.id}/flow-events?since=" in page.text
    lone = await client.enqueue("call", {"fn": "plus", "args": [1]})
    assert 'id="flow"' not in (await dash.get(f"/queues/{client.queue}/jobs/{lone.id}")).text


async def test_a_failed_chain_shows_each_job_failed_and_why(
    client: Client, worker: WorkerFactory, dash: httpx.AsyncClient
) -> None:
    run = await client.enqueue_flow(
        chain(
            ("call", {"fn": "boom"}),
            ("call", {"fn": "plus", "args": [2]}),
            ("call", {"fn": "plus", "args": [3]}),
        )
    )
    await worker(functions=[boom, plus])
    await _ended(client, run.jobs[-1])
    page = await dash.get(f"/queues/{client.queue}/jobs/{run.id}")
    rows = outline(page.text)
    assert [r["status"] for r in rows] == ["failed", "failed", "failed"]
    never_ran = [("never ran" in r["text"]) for r in rows]
    assert never_ran == [True, True, False]  # the first one ran and failed by itself
    assert "RuntimeError: boom &lt;b&gt;" in page.text and "boom <b>" not in page.text
    assert "dependency" in rows[0]["text"] and "boom" in rows[0]["text"]
    # Nothing can change any more: no stream, and the detail fragment holds the same tree.
    assert "flow-events" not in page.text
    detail = await dash.get(f"/queues/{client.queue}/jobs/{run.id}/detail")
    assert [r["status"] for r in outline(detail.text)] == ["failed"] * 3


async def test_a_cut_tree_says_so_and_a_gone_job_is_shown_gone(
    client: Client, dash: httpx.AsyncClient
) -> None:
    run = await client.enqueue_flow(
        chain(("call", {"fn": "plus", "args": [1]}), ("call", {"fn": "plus", "args": [2]}))
    )
    tree = await client.flow_tree(run.id)
    assert tree is not None and not tree.cut
    assert (
        "only its first jobs are shown"
        not in (await dash.get(f"/queues/{client.queue}/jobs/{run.id}")).text
    )
    # A deep tree's plain form stops nesting, and says it was cut.
    deep = TreeNode("q", "0", None)
    node = deep
    for i in range(MAX_PLAIN_DEPTH + 5):
        node.children.append(TreeNode("q", str(i + 1), None))
        node = node.children[0]
    plain = Tree(deep).plain()
    depth, at = 0, plain["root"]
    while at["children"]:
        depth, at = depth + 1, at["children"][0]
    assert plain["cut"] is True and depth == MAX_PLAIN_DEPTH
    assert Tree(TreeNode("q", "x", None)).plain() == {
        "root": {
            "id": "x",
            "queue": "q",
            "status": None,
            "name": None,
            "error": None,
            "failure": None,
            "children": [],
        },
        "cut": False,
    }


async def test_waiting_is_counted_tabbed_coloured_and_cancellable(
    client: Client, dash: httpx.AsyncClient
) -> None:
    parent = await client.enqueue("call", {"fn": "plus", "args": [1]}, delay=3600)
    waiting = await client.enqueue("call", {"fn": "plus", "args": [2]}, depends_on=[parent])
    overview = (await dash.get("/")).text
    assert 'class="count st-waiting"' in overview and 'data-count="counts.waiting">1<' in overview
    listing = (await dash.get(f"/queues/{client.queue}?status=waiting")).text
    assert waiting.id in listing and parent.id not in listing
    assert "Cancel" in listing.split(waiting.id)[-1]
    css = (await dash.get("/static/dashboard.css")).text
    assert ".st-waiting" in css and css.count("--waiting:") == 2  # light and dark
    page = await dash.get(f"/queues/{client.queue}/jobs/{waiting.id}")
    assert "Cancel job" in page.text
    form = {"csrf": csrf_of(page.text), "next": f"/queues/{client.queue}/jobs/{waiting.id}"}
    done = await dash.post(f"/queues/{client.queue}/jobs/{waiting.id}/cancel", data=form)
    assert done.status_code == 303
    assert (await client.get(waiting.id)).status == "cancelled"  # type: ignore[union-attr]


async def test_api_job_fields_enqueue_with_parents_and_the_tree(
    client: Client, dash: httpx.AsyncClient
) -> None:
    q = client.queue
    parent = (
        await dash.post(f"/api/queues/{q}/jobs", json={"kind": "call", "payload": {"fn": "plus"}})
    ).json()
    other = await client.enqueue("call", {"fn": "plus"}, queue=f"{q}-other")
    body = {
        "kind": "call",
        "payload": {"fn": "plus"},
        "options": {
            "depends_on": [parent["id"], f"{q}-other/{other.id}"],
            "on_parent_failure": "ignore",
        },
    }
    made = await dash.post(f"/api/queues/{q}/jobs", json=body)
    assert made.status_code == 202, made.text
    child = made.json()
    assert child["status"] == "waiting"
    assert child["depends_on"] == [parent["id"], f"{q}-other/{other.id}"]
    assert child["dependents"] == [] and child["flow"] is None
    read = (await dash.get(f"/api/jobs/{parent['id']}")).json()
    assert read["dependents"] == [child["id"]]
    tree = (await dash.get(f"/api/jobs/{child['id']}/tree", params={"queue": q})).json()
    assert tree["cut"] is False
    assert tree["root"]["id"] == child["id"] and tree["root"]["status"] == "waiting"
    kids = tree["root"]["children"]
    assert [(k["id"], k["queue"], k["status"], k["children"]) for k in kids] == [
        (parent["id"], q, "pending", []),
        (other.id, f"{q}-other", "pending", []),
    ]
    run = await client.enqueue_flow(
        chain(step("call", {"fn": "plus"}), step("call", {"fn": "plus"}))
    )
    assert (await dash.get(f"/api/jobs/{run.jobs[0].id}")).json()["flow"] == run.id


async def test_api_refuses_bad_parents_clearly(client: Client, dash: httpx.AsyncClient) -> None:
    q = client.queue
    parent = await client.enqueue("call", {"fn": "plus"})
    bad = {
        "policy": (
            {"depends_on": [parent.id], "on_parent_failure": "explode"},
            "on_parent_failure must be one of cancel, fail, ignore, run",
        ),
        "alone": ({"on_parent_failure": "fail"}, "on_parent_failure needs depends_on"),
        "string": ({"depends_on": parent.id}, "depends_on takes a list of jobs"),
        "empty": ({"depends_on": []}, "depends_on takes 1-1000 jobs"),
        "delayed": ({"depends_on": [parent.id], "delay": 5}, "cannot be delayed"),
        "id": ({"depends_on": ["a b"]}, "invalid job id"),
    }
    for name, (options, said) in bad.items():
        body = {"kind": "call", "payload": {"fn": "plus"}, "options": options}
        answer = await dash.post(f"/api/queues/{q}/jobs", json=body)
        assert answer.status_code == 422, (name, answer.text)
        assert said in answer.json()["error"], (name, answer.text)
    # A job it depends on that does not exist is a job not found, of this queue or another.
    for ref in ("no-such-job", f"{q}-other/no-such-job"):
        body = {"kind": "call", "payload": {"fn": "plus"}, "options": {"depends_on": [ref]}}
        answer = await dash.post(f"/api/queues/{q}/jobs", json=body)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"].startswith("unknown dependency: no job no-such-job")
    assert (await client.job_counts([q]))[0].counts["waiting"] == 0
    missing = await dash.get("/api/jobs/no-such-job/tree")
    assert missing.status_code == 404


async def test_the_job_page_stream_follows_the_flow_until_it_ends(
    client: Client, worker: WorkerFactory
) -> None:
    run = await client.enqueue_flow(
        chain(("call", {"fn": "hold", "args": [0.3]}), ("call", {"fn": "plus", "args": [2]}))
    )
    first, last = run.jobs
    url = f"/queues/{client.queue}/jobs/{first.id}/flow-events?since=0"
    async with live_http(create_app(client)) as http, http.stream("GET", url) as response:
        await worker(functions=[hold, plus])
        seen = []
        async with asyncio.timeout(20):
            async for msg in messages(response):
                seen.append((msg["event"], msg["data"].get("job_id"), msg["data"].get("type")))
                if msg["event"] == "end":
                    break
    # The page's job's events and the other job's, up to the flow's end, then `end`.
    assert ("message", first.id, "completed") in seen
    assert ("message", last.id, "ready") in seen
    assert seen[-2] == ("message", last.id, "completed") and seen[-1][0] == "end"
    async with live_http(create_app(client)) as http:
        lone = await client.enqueue("call", {"fn": "plus", "args": [1]})
        answer = await http.get(f"/queues/{client.queue}/jobs/{lone.id}/flow-events")
        assert answer.status_code == 404
