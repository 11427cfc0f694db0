"""docs/wire-format.md, followed to the letter: a job enqueued without the Python client (the
script's text from the package files, EVAL with 20 arguments, SADD to the registry) runs."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgpack
import pytest
from redis.exceptions import ResponseError

from redisjobs import Client, Job
from redisjobs.keys import is_job_id
from redisjobs.options import Policy
from redisjobs.wire import EnqueueRow
from tests.conftest import WorkerFactory
from tests.jobs import echo

SCRIPTS = files("redisjobs.scripts")
ENQUEUE = (
    SCRIPTS.joinpath("_lib.lua").read_text() + "\n" + SCRIPTS.joinpath("enqueue.lua").read_text()
)


DOC = Path(__file__).parent.parent / "docs" / "wire-format.md"


def _args(job_id: str, payload: Any, *, delay_ms: int = 0, priority: Any = 0) -> list[Any]:
    packed = msgpack.packb(payload, use_bin_type=True)
    return [job_id, "call", packed, 2, 1000, 2.0, 0.1, 0, 86_400_000, delay_ms, 0, priority, *NONE]


NONE = [0, 0, 0, 0, "", "", 0, 0]
"""The rules of a job that sets none (values 13-20)."""


def test_the_row_is_named_alike_in_python_lua_and_the_document() -> None:
    documented = re.findall(r"^\| (\d+) \| (\w+) \|", DOC.read_text(), re.MULTILINE)
    assert [int(n) for n, _ in documented] == list(range(1, 21))
    lua = SCRIPTS.joinpath("_lib.lua").read_text()  # create_job, which every enqueue runs
    named = re.search(r"local (job_id, [\w,\s]*?) = unpack\(args, i, i \+ STRIDE - 1\)", lua)
    assert named is not None and "local STRIDE = 20" in lua
    in_lua = re.split(r",\s*", named.group(1))
    assert [name for _, name in documented] == list(EnqueueRow._fields) == in_lua
    assert EnqueueRow._fields[3:9] == Policy._fields  # a row is built from a Policy unpacked
    assert EnqueueRow._fields[12:] == (  # and ends with the rules, by these names
        "completed_ttl_ms",
        "completed_keep",
        "failed_ttl_ms",
        "failed_keep",
        "unique",
        "unique_key",
        "unique_ttl_ms",
        "idempotency_ttl_ms",
    )


async def test_a_job_enqueued_by_hand_runs(client: Client, worker: WorkerFactory) -> None:
    redis, queue = client.redis, client.queue
    prefix = f"rj:{{{queue}}}:"
    payload = {"fn": "echo", "args": {"value": {"from": "another language", "n": [1, 2.5]}}}
    created = await redis.eval(
        ENQUEUE,
        1,
        prefix,
        *_args("wire-1", payload),
        *_args("wire-2", payload, delay_ms=3_600_000),
    )
    assert created == [1, 1]
    assert await redis.eval(ENQUEUE, 1, prefix, *_args("wire-1", payload)) == [0]  # idempotent
    await redis.sadd("rj:queues", queue)

    fields: Any = await redis.hgetall(f"{prefix}job:wire-1")
    documented = {"kind", "payload", "status", "attempt", "max_retries", "retry_delay"}
    documented |= {"retry_backoff", "retry_jitter", "timeout", "result_ttl", "created_at"}
    assert documented | {"crashes", "msg"} == {k.decode() for k in fields}  # priority 0: absent
    assert fields[b"status"] == b"pending"
    later: Any = await redis.hgetall(f"{prefix}job:wire-2")
    assert later[b"status"] == b"scheduled" and b"scheduled_at" in later

    await worker(functions=[echo])
    assert await client.wait("wire-1", timeout=10) == {"from": "another language", "n": [1, 2.5]}
    assert queue in await client.queues()
    entries: Any = await redis.xrange(f"{prefix}log")
    first = msgpack.unpackb(entries[0][1][b"e"])
    assert first == {
        "type": "enqueued",
        "queue": queue,
        "job_id": "wire-1",
        "attempt": 0,
        "ts": first["ts"],
        "kind": "call",
    }


SAMPLE_IDS = [
    "a",
    "img-42",
    "resize-a.png",
    "user@example.com",
    "x+y=z",
    "_private",
    "0",
    "a" * 200,
    "a" * 201,
    "",
    "victim:log",
    "-flag",
    ".hidden",
    "a b",
    "a/b",
    "a*",
    "{tag}",
    "é",
    "line\n",
    "a?",
]


async def test_the_script_enforces_the_job_id_rule(client: Client) -> None:
    """A producer in another language cannot write an id the Python client refuses: the same
    ids pass the script's check and keys.JOB_ID, and a batch with one bad id writes nothing."""
    redis, queue = client.redis, client.queue
    prefix = f"rj:{{{queue}}}:"
    for job_id in SAMPLE_IDS:
        try:
            await redis.eval(ENQUEUE, 1, prefix, *_args(job_id, None))
            accepted = True
        except ResponseError as exc:
            assert "invalid job id" in str(exc)
            accepted = False
        assert accepted == is_job_id(job_id), job_id
    before: Any = await redis.keys(f"{prefix}*")
    with pytest.raises(ResponseError, match="invalid job id"):
        await redis.eval(ENQUEUE, 1, prefix, *_args("fine-1", None), *_args("victim:log", None))
    assert await redis.keys(f"{prefix}*") == before


async def test_priority_is_stored_when_not_0_and_checked(client: Client) -> None:
    redis, queue = client.redis, client.queue
    prefix = f"rj:{{{queue}}}:"
    assert await redis.eval(ENQUEUE, 1, prefix, *_args("urgent", None, priority=7)) == [1]
    assert await redis.hget(f"{prefix}job:urgent", "priority") == b"7"
    before: Any = await redis.keys(f"{prefix}*")
    for bad in (-1, 2**21 + 1, 1.5, "high"):
        with pytest.raises(ResponseError, match="invalid priority"):
            await redis.eval(
                ENQUEUE, 1, prefix, *_args("fine", None), *_args("x", None, priority=bad)
            )
    assert await redis.keys(f"{prefix}*") == before


async def test_rules_by_hand_are_checked_and_stored_only_when_set(client: Client) -> None:
    redis, queue = client.redis, client.queue
    prefix = f"rj:{{{queue}}}:"
    ruled = [*_args("ruled", None)[:12], 60000, 5, 0, 0, "until_done", "k:1", 1000, 90000]
    assert await redis.eval(ENQUEUE, 1, prefix, *ruled) == [1]
    fields: Any = await redis.hgetall(f"{prefix}job:ruled")
    assert (fields[b"completed_ttl"], fields[b"completed_keep"]) == (b"60000", b"5")
    assert b"failed_ttl" not in fields and fields[b"unique_key"] == b"k:1"
    assert await redis.get(f"{prefix}unique:k:1") == b"ruled"
    other = [*_args("other", None)[:12], 0, 0, 0, 0, "until_done", "k:1", 1000, 0]
    assert await redis.eval(ENQUEUE, 1, prefix, *other) == [b"ruled"]  # the lock's holder
    before: Any = await redis.keys(f"{prefix}*")
    bad_rules = [
        ([-1, 0, 0, 0, "", "", 0, 0], "invalid retention"),
        ([0, "1e3", 0, 0, "", "", 0, 0], "invalid retention"),
        ([0, 0, 0, 0, "", "", 0, 0.5], "invalid retention"),
        ([0, 0, 0, 0, "always", "k", 1000, 0], "invalid unique mode"),
        ([0, 0, 0, 0, "until_done", "", 1000, 0], "invalid unique key"),
        ([0, 0, 0, 0, "until_done", "a b", 1000, 0], "invalid unique key"),
        ([0, 0, 0, 0, "until_done", "k", 0, 0], "invalid unique ttl"),
    ]
    for rules, error in bad_rules:
        with pytest.raises(ResponseError, match=error):
            row = _args("x", None)[:12] + rules
            await redis.eval(ENQUEUE, 1, prefix, *_args("fine", None), *row)
    assert await redis.keys(f"{prefix}*") == before


async def test_older_versions_calls_are_refused_whole(client: Client) -> None:
    """11 (version 1: no priority) or 12 (version 2: no rules) arguments per job would shift
    every later job's values: refused, one job or a batch, with nothing written."""
    redis, queue = client.redis, client.queue
    prefix = f"rj:{{{queue}}}:"
    for width, what in ((11, "invalid priority"), (12, "invalid retention")):
        with pytest.raises(ResponseError, match=f"20 values per job, got {width}"):
            await redis.eval(ENQUEUE, 1, prefix, *_args("old-1", None)[:width])
        batch = [a for n in range(20) for a in _args(f"old-{n}", None)[:width]]
        with pytest.raises(ResponseError, match=what):  # whole rows of 20, misread
            await redis.eval(ENQUEUE, 1, prefix, *batch)
    assert await redis.keys(f"{prefix}*") == []


def test_a_version_1_hash_decodes_and_an_unknown_reason_is_none() -> None:
    """A job written before `failure` and `priority` were recorded has neither field."""
    old = {b"status": b"failed", b"kind": b"call", b"error": b"timed out after 1 s"}
    job = Job.from_hash("q", "old", old)
    assert (job.failure, job.priority, job.error) == (None, 0, "timed out after 1 s")
    assert Job.from_hash("q", "x", {**old, b"failure": b"gremlins"}).failure is None
    assert Job.from_hash("q", "x", {**old, b"failure": b"timeout"}).failure == "timeout"
    assert Job.from_hash("q", "x", {**old, b"priority": b"not a number"}).priority == 0
