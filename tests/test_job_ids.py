"""Job ids a caller chooses: refused, with nothing written, unless of the documented charset.

An id with ``:`` could name another key of the queue (``victim:log`` is where job ``victim``
keeps its log list), one with glob characters a channel pattern, one with ``/`` a path of the
HTTP API, one starting with ``-`` an option of the command line.
"""

from __future__ import annotations

import string
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from redisjobs import Client, InvalidJobId
from redisjobs.keys import JOB_ID, JOB_ID_RULE, REGISTRY, check_job_id
from redisjobs.manager import JobManager
from redisjobs.options import new_job_id

HOSTILE: list[Any] = [
    "victim:log",  # the key of job victim's log list
    "victim:events",
    "a*",
    "a?",
    "[ab]",
    "{other}",
    "a b",
    "a/b",
    "a%2Fb",
    "-rf",
    ".hidden",
    "..",
    "",
    "a" * 201,
    "a\n",  # `$` alone would let a trailing newline through
    "\u00e9t\u00e9",
    "a\x00b",
    42,  # not a string
]
VALID = ["a", "a" * 200, "order-42", "x@example.com", "a+b=c", "v1.2", "_x", "9", "x."]

Call = Callable[[Client, Any], Awaitable[Any]]


async def _events(client: Client, job_id: Any) -> None:
    async for _ in client.events(job_id):
        break


CALLS: dict[str, Call] = {
    "enqueue": lambda c, i: c.enqueue("call", None, job_id=i),
    "enqueue_many": lambda c, i: c.enqueue_many(
        [("call", 1), {"kind": "call", "payload": 2, "job_id": i}]
    ),
    "get": lambda c, i: c.get(i),
    "wait": lambda c, i: c.wait(i, timeout=1),
    "cancel": lambda c, i: c.cancel(i),
    "retry": lambda c, i: c.retry(i),
    "remove": lambda c, i: c.remove(i),
    "logs": lambda c, i: c.logs(i),
    "set_progress": lambda c, i: c.set_progress(i, 50),
    "events": _events,
}


async def keyspace(client: Client) -> list[bytes]:
    """Every key of the client's queue (SCAN on its prefix)."""
    return [k async for k in client.redis.scan_iter(match=client.keys().prefix + "*")]


def test_the_rule() -> None:
    for job_id in VALID:
        assert check_job_id(job_id) == job_id
    for job_id in HOSTILE:
        with pytest.raises(InvalidJobId) as refused:
            check_job_id(job_id)
        assert isinstance(refused.value, ValueError)
        if isinstance(job_id, str):
            assert JOB_ID_RULE in str(refused.value) and len(str(refused.value)) < 200


def test_generated_ids_keep_the_rule_and_128_random_bits() -> None:
    ids = [new_job_id() for _ in range(20_000)]
    assert all(len(job_id) == 22 and check_job_id(job_id) == job_id for job_id in ids)
    assert len(set(ids)) == len(ids)
    # 16 random bytes, URL-safe base64: every character of the alphabet shows up first (but
    # "-", which the rule refuses there), and the last carries the 16th byte's low two bits
    firsts, lasts = {i[0] for i in ids}, {i[-1] for i in ids}
    assert len(firsts) == 63 and "-" not in firsts
    assert lasts == set("AQgw")
    assert {c for i in ids for c in i} == set(string.ascii_letters + string.digits + "-_")


@pytest.mark.parametrize("call", list(CALLS))
async def test_every_client_call_refuses_a_hostile_id_and_writes_nothing(
    client: Client, call: str
) -> None:
    await client.connect()
    for job_id in HOSTILE:
        with pytest.raises(InvalidJobId, match="job id"):
            await CALLS[call](client, job_id)
    assert await keyspace(client) == []
    assert not await client.redis.sismember(REGISTRY.queues, client.queue)


async def test_valid_ids_round_trip(client: Client) -> None:
    for job_id in VALID:
        job = await client.enqueue("call", None, job_id=job_id)
        assert job.id == job_id
        stored = await client.get(job_id)
        assert stored is not None and stored.id == job_id
    assert await client.cancel("x@example.com")


async def test_the_job_manager_refuses_a_hostile_id(url: str, queue: str) -> None:
    hostile = "victim:log"
    async with JobManager(url=url, queue=queue) as m:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: m.get(hostile),
            lambda: m.wait(hostile, timeout=1),
            lambda: m.cancel(hostile),
            lambda: m.get_progress(hostile),
            lambda: m.update_progress(hostile, 50),
        ]
        for call in calls:
            with pytest.raises(InvalidJobId):
                await call()


def test_the_wire_format_documents_the_rule() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "wire-format.md").read_text()
    assert f"`{JOB_ID.pattern}`" in doc
    assert "1-200 characters of `A-Z a-z 0-9 _ - . @ + =`, not starting with `-` or `.`" in doc
    assert JOB_ID_RULE == "1-200 characters of A-Z a-z 0-9 _ - . @ + =, not starting with - or ."
