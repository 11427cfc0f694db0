"""`redisjobs status` of a job in a flow prints the flow's tree (and `--json` holds it), and
`jobs --status waiting` lists the jobs that wait; real processes against the session's
redis-server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from redisjobs import chain
from redisjobs.sync import Client
from tests import test_cli
from tests.test_cli import call, ok, stop, until

# test_cli's fixtures, for the tests here that ask for them by name
queue, spawn, worker = test_cli.queue, test_cli.spawn, test_cli.worker

pytestmark = pytest.mark.timeout(60)


def _chain(redis_url: str, queue: str, first: str) -> list[str]:
    """Enqueue a chain of three steps, `first` the first one's function; their ids in order."""
    with Client(redis_url, queue=queue) as client:
        run = client.enqueue_flow(
            chain(
                ("call", json.loads(call(first, "kaput"))),
                ("call", json.loads(call("add", 1, 2))),
                ("call", json.loads(call("add", 3, 4))),
            )
        )
    return [job.id for job in run.jobs]


def test_status_of_a_waiting_job_prints_its_flow(redis_url: str, queue: str) -> None:
    first, middle, last = _chain(redis_url, queue, "add")
    text = ok("status", middle, "--redis", redis_url).splitlines()
    rows = dict(line.split(None, 1) for line in text[: text.index("")])
    assert rows["status"] == "waiting" and rows["depends_on"] == first
    assert rows["dependents"] == last and rows["flow"] == last
    tree = text[text.index("") + 2 :]
    assert tree == [
        f"- {last}  waiting  tests.jobs:add",
        f"  * {middle}  waiting  tests.jobs:add",
        f"    - {first}  pending  tests.jobs:add",
    ]
    listing = ok("jobs", "--redis", redis_url, "-q", queue, "--status", "waiting")
    assert middle in listing and last in listing and first not in listing
    lone = ok("enqueue", "call", call("add", 1, 1), "--redis", redis_url, "-q", queue).strip()
    alone = ok("status", lone, "--redis", redis_url)
    assert "flow" not in alone and "depends_on" not in alone


@pytest.mark.slow
def test_status_of_a_failed_chain_shows_why_each_failed(
    redis_url: str, queue: str, worker: Callable[..., subprocess.Popen[str]]
) -> None:
    first, middle, last = _chain(redis_url, queue, "fail")
    proc = worker()
    with Client(redis_url, queue=queue) as client:
        until(lambda: client.get(last).status == "failed", 20, "the chain's end")  # type: ignore[union-attr]
    assert stop(proc) == 0
    text = ok("status", first, "--redis", redis_url).splitlines()
    tree = text[text.index("") + 2 :]
    assert tree[0].startswith(f"- {last}  failed (dependency)  tests.jobs:add  dependency ")
    assert tree[1].startswith(f"  - {middle}  failed (dependency)  tests.jobs:add  dependency ")
    assert tree[2] == f"    * {first}  failed (error)  tests.jobs:fail  RuntimeError: kaput"
    doc = json.loads(ok("status", first, "--redis", redis_url, "--json"))
    assert doc["status"] == "failed" and doc["dependents"] == [middle] and doc["flow"] == last
    root = doc["tree"]["root"]
    assert doc["tree"]["cut"] is False
    assert (root["id"], root["status"], root["failure"]) == (last, "failed", "dependency")
    [child] = root["children"]
    [grandchild] = child["children"]
    assert (child["id"], child["status"]) == (middle, "failed")
    assert grandchild == {
        "id": first,
        "queue": queue,
        "status": "failed",
        "name": "tests.jobs:fail",
        "error": "RuntimeError: kaput",
        "failure": "error",
        "children": [],
    }
