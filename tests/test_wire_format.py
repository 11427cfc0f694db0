"""docs/wire-format.md, followed to the letter: a job enqueued without the Python client (the
script's text from the package files, EVAL with 13 arguments, SADD to the registry) runs."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import msgpack
import pytest
from redis.exceptions import ResponseError

from redisjobs import Client, Job
from redisjobs.jobrules import RULE_NAMES
from redisjobs.keys import is_job_id
from redisjobs.options import Policy
from redisjobs.wire import EnqueueRow, row_args
from tests.conftest import WorkerFactory
from tests.jobs import echo

SCRIPTS = files("redisjobs.scripts")
ENQUEUE = "\n".join(
    (
        SCRIPTS.joinpath("_lib.lua").read_text(),
        "enter(KEYS)",
        SCRIPTS.joinpath("enqueue.lua").read_text(),
    )
)


DOC = Path(__file__).parent.parent / "docs" / "wire-format.md"


def _args(job_id: str, payload: Any, *, delay_ms: int = 0, priority: Any = 100) -> list[Any]:
    """A plain job's row: 12 values, then 0 rules."""
    packed = msgpack.packb(payload, use_bin_type=True)
    return [job_id, "call", packed, 2, 1000, 2.0, 0.1, 0, 86_400_000, delay_ms, 0, priority, 0]


def _ruled(job_id: str, *pairs: Any) -> list[Any]:
    """A row with `pairs` (name, value, name, value...) as its rules, counted."""
    return [*_args(job_id, None)[:12], len(pairs) // 2, *pairs]


def test_the_row_is_named_alike_in_python_lua_and_the_document() -> None:
    doc = DOC.read_text()
    documented = re.findall(r"^\| (\d+) \| (\w+) \|", doc, re.MULTILINE)
    assert [int(n) for n, _ in documented] == list(range(1, 14))
    lua = SCRIPTS.joinpath("_lib.lua").read_text()  # create_job, which every enqueue runs
    named = re.search(r"local (job_id, [\w,\s]*?) = unpack\(args, i, i \+ FIXED - 1\)", lua)
    assert named is not None and "local FIXED = 12" in lua
    in_lua = re.split(r",\s*", named.group(1))
    names = [name for _, name in documented]
    assert names[:12] == list(EnqueueRow._fields[:12]) == in_lua and names[12] == "n"
    assert EnqueueRow._fields[12:] == ("rules",)  # sent as n, then the pairs
    assert EnqueueRow._fields[3:9] == Policy._fields  # a row is built from a Policy unpacked
    # the rules: the document's table, Python's names and _lib.lua's allow-list (to hash fields)
    section = doc[doc.index("#### Rules") : doc.index("### Unique jobs")]
    rules_doc = re.findall(r"^\| `(\w+)` \| .* \| `(\w+)` \|$", section, re.MULTILINE)
    table = re.search(r"local RULES = \{(.*?)\}", lua, re.DOTALL)
    assert table is not None
    rules_lua = re.findall(r"(\w+) = '(\w+)'", table.group(1))
    assert rules_doc == rules_lua and [name for name, _ in rules_doc] == list(RULE_NAMES)


def test_a_plain_row_is_13_values_and_rules_follow_as_counted_pairs() -> None:
    plain = EnqueueRow("a", "call", b"\x90", 0, 1000, 2.0, 0.1, 0, 60_000)
    ruled = plain._replace(job_id="b", rules=(("unique", "until_done"), ("unique_key", "k")))
    assert row_args([plain, ruled]) == [
        *plain[:12],
        0,
        *ruled[:12],
        2,
        "unique",
        "until_done",
        "unique_key",
        "k",
    ]
    assert (plain.rule("unique"), ruled.rule("unique_key")) == (None, "k")


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
    # settings at their defaults are absent (retry_delay 1000, ..., priority 100), as are
    # attempt and crashes until a run counts them; max_retries=2 is not the default
    documented = {"kind", "payload", "status", "created_at", "max_retries", "msg"}
    assert documented == {k.decode() for k in fields}
    assert fields[b"status"] == b"pending"
    later: Any = await redis.hgetall(f"{prefix}job:wire-2")
    assert later[b"status"] == b"scheduled" and b"scheduled_at" in later

    await worker(functions=[echo])
    assert await client.wait("wire-1", timeout=10) == {"from": "another language", "n": [1, 2.5]}
    assert queue in await client.queues()
    entries: Any = await redis.xrange(f"{prefix}log")
    events = [msgpack.unpackb(fields[b"e"]) for _, fields in entries]
    # what the entry says already is left out: the queue (the log's), the time (the entry id's)
    # and attempt 0
    assert events[0] == {"type": "enqueued", "job_id": "wire-1", "kind": "call"}
    started = next(e for e in events if e["type"] == "started" and e["job_id"] == "wire-1")
    assert started == {"type": "started", "job_id": "wire-1", "attempt": 1, "worker": ANY}


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


async def test_priority_is_stored_when_not_100_and_checked(client: Client) -> None:
    redis, queue = client.redis, client.queue
    prefix = f"rj:{{{queue}}}:"
    assert await redis.eval(ENQUEUE, 1, prefix, *_args("urgent", None, priority=7)) == [1]
    assert await redis.eval(ENQUEUE, 1, prefix, *_args("top", None, priority=0)) == [1]
    assert await redis.hget(f"{prefix}job:urgent", "priority") == b"7"
    assert await redis.hget(f"{prefix}job:top", "priority") == b"0"
    assert await redis.zrange(f"{prefix}prio", 0, -1) == [b"top", b"urgent"]
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
    lock = ("unique", "until_done", "unique_key", "k:1", "unique_ttl_ms", 1000)
    ruled = _ruled("ruled", "completed_ttl_ms", 60000, *lock, "failed_ttl_ms", 0)
    ruled += _args("plain", None)  # rows of any length follow one another
    ruled += _ruled("idem", "idempotency_ttl_ms", 90000, "completed_keep", 5)
    assert await redis.eval(ENQUEUE, 1, prefix, *ruled) == [1, 1, 1]
    fields: Any = await redis.hgetall(f"{prefix}job:ruled")
    assert fields[b"completed_ttl"] == b"60000" and b"completed_keep" not in fields
    assert b"failed_ttl" not in fields and fields[b"unique_key"] == b"k:1"  # 0: unset
    assert (fields[b"unique"], fields[b"unique_ttl"]) == (b"until_done", b"1000")
    assert await redis.get(f"{prefix}unique:k:1") == b"ruled"
    plain: Any = await redis.hgetall(f"{prefix}job:plain")
    assert not {b"completed_ttl", b"unique", b"idempotency_ttl"} & set(plain)
    idem: Any = await redis.hgetall(f"{prefix}job:idem")
    assert (idem[b"idempotency_ttl"], idem[b"completed_keep"]) == (b"90000", b"5")
    other = _ruled("other", *lock)
    assert await redis.eval(ENQUEUE, 1, prefix, *other) == [b"ruled"]  # the lock's holder
    before: Any = await redis.keys(f"{prefix}*")
    bad_rows = [
        (_ruled("x", "completed_ttl_ms", -1), "invalid retention"),
        (_ruled("x", "completed_keep", "1e3"), "invalid retention"),
        (_ruled("x", "idempotency_ttl_ms", 0.5), "invalid retention"),
        (_ruled("x", "unique", "always", "unique_key", "k", "unique_ttl_ms", 1), "unique mode"),
        (_ruled("x", "unique", "", "unique_key", "k", "unique_ttl_ms", 1), "unique mode"),
        (_ruled("x", "unique", "until_done", "unique_ttl_ms", 1000), "invalid unique key"),
        (_ruled("x", *lock[:3], "a b", *lock[4:]), "invalid unique key"),
        (_ruled("x", "unique_key", "k"), "need unique"),
        (_ruled("x", *lock[:4]), "invalid unique ttl"),
        (_ruled("x", *lock[:4], "unique_ttl_ms", 0), "invalid unique ttl"),
        (_ruled("x", "priority", 5), "unknown or repeated rule: priority"),
        (_ruled("x", "failed_keep", 1, "failed_keep", 2), "unknown or repeated rule"),
        (_ruled("x", "failed_keep", 1)[:-1], "past the last argument"),  # an odd count
        ([*_args("x", None)[:12], 3, "failed_keep", 1], "past the last argument"),
        (_args("x", None)[:12], "past the last argument"),  # no n
        ([*_args("x", None)[:12], -1], "invalid rule count"),
        ([*_args("x", None)[:12], "two"], "invalid rule count"),
    ]
    for row, error in bad_rows:
        with pytest.raises(ResponseError, match=error):
            await redis.eval(ENQUEUE, 1, prefix, *_args("fine", None), *row)
    assert await redis.keys(f"{prefix}*") == before


async def test_older_versions_calls_are_refused_whole(client: Client) -> None:
    """11 (version 1: no priority), 12 (version 2: no rules) or 20 (version 3: eight rules in
    fixed places) arguments per job are misread from the 13th on: refused, one job or a batch,
    with nothing written."""
    redis, queue = client.redis, client.queue
    prefix = f"rj:{{{queue}}}:"
    v3 = [*_args("old-0", None)[:12], 0, 0, 0, 0, "", "", 0, 0]
    for width, what in ((11, "invalid priority"), (12, "rule count"), (20, "rule count")):
        row = v3[:width]
        with pytest.raises(ResponseError, match="past the last argument"):
            await redis.eval(ENQUEUE, 1, prefix, *row)
        batch = [a for n in range(20) for a in [f"old-{n}", *row[1:]]]
        with pytest.raises(ResponseError, match=what):
            await redis.eval(ENQUEUE, 1, prefix, *batch)
    assert await redis.keys(f"{prefix}*") == []


def test_a_version_1_hash_decodes_and_an_unknown_reason_is_none() -> None:
    """A job written before `failure` and `priority` were recorded has neither field."""
    old = {b"status": b"failed", b"kind": b"call", b"error": b"timed out after 1 s"}
    job = Job.from_hash("q", "old", old)
    assert (job.failure, job.priority, job.error) == (None, 100, "timed out after 1 s")
    assert Job.from_hash("q", "x", {**old, b"failure": b"gremlins"}).failure is None
    assert Job.from_hash("q", "x", {**old, b"failure": b"timeout"}).failure == "timeout"
    assert Job.from_hash("q", "x", {**old, b"priority": b"not a number"}).priority == 100
