"""The pending jobs of a queue: how many, since when, and which.

A pending job has no status-index entry of its own when it waits as a `ready` entry (the plain
case): the stream already orders such jobs, and an index entry would cost every job a command
at enqueue and at start, and about 100 bytes while it waits. So (see ``move_status`` in
``_lib.lua``):

* their number is ``enqueued - started + pending_adj`` of the stats hash;
* the ones with a `ready` entry are the stream's newest entries (the group delivers in order:
  those it has not delivered yet, then any a worker read a moment ago and has not started);
* the ones without (in `prio` or a limit key's backlog) are members of ``status:pending``,
  scored by when they became pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .keys import GROUP, QueueKeys
from .roundtrips import Command, Flow, cmd, tolerant

COUNT_FIELDS = (b"enqueued", b"started", b"pending_adj")
"""The stats fields the pending count is made of."""
SCAN_PAGE = 200
"""`ready` entries read per round trip while listing."""
HEAD_LOOK = 16
"""Undelivered entries looked at for the oldest pending one (wake-up entries hold no job)."""
_GROUP = GROUP.encode()


def pending_count(stats: Mapping[bytes, bytes | None]) -> int:
    """The queue's pending jobs, from its stats hash (HGETALL)."""
    return counted(stats.get(f) for f in COUNT_FIELDS)


def count_read(keys: QueueKeys) -> Command:
    """The read of the queue's pending count alone, whose reply :func:`counted` takes."""
    return cmd("hmget", keys.stats, *COUNT_FIELDS)


def counted(counters: Iterable[bytes | None]) -> int:
    """The pending count from the values of :data:`COUNT_FIELDS`, in their order."""
    enqueued, started, adj = (_number(v) for v in counters)
    return max(0, enqueued - started + adj)


def _number(raw: bytes | None) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:  # something other than the scripts wrote it
        return 0


def _entry_ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def groups_read(keys: QueueKeys) -> Command:
    """The read of `ready`'s consumer groups that :func:`oldest_ready_flow` takes the reply of
    (its error when there is no stream), to send in a batch of the caller's."""
    return tolerant(cmd("xinfo_groups", keys.ready))


def oldest_ready_flow(names: Sequence[str], groups: Sequence[Any]) -> Flow[dict[str, int]]:
    """When the oldest job each queue of `names` holds as an undelivered `ready` entry became
    pending (Redis ms), from the replies of :func:`groups_read`; queues with none are left
    out. One round trip, none when no queue has a stream."""
    asked, starts = [], []
    for name, per_stream in zip(names, groups, strict=True):
        if isinstance(per_stream, Exception):
            continue  # no stream: no job waits in one
        last = next((g["last-delivered-id"] for g in per_stream if g["name"] == _GROUP), None)
        asked.append(name)
        starts.append(b"(" + last if last is not None else b"-")
    heads = yield [
        cmd("xrange", QueueKeys(n).ready, min=start, count=HEAD_LOOK)
        for n, start in zip(asked, starts, strict=True)
    ]
    out: dict[str, int] = {}
    for name, entries in zip(asked, heads, strict=True):
        first = next((eid for eid, fields in entries if b"id" in fields), None)
        if first is not None:
            out[name] = _entry_ms(first)
    return out


def pending_ids_flow(
    keys: QueueKeys, offset: int, limit: int, oldest: bool = False
) -> Flow[list[bytes]]:
    """Ids of the queue's pending jobs, newest first (`oldest`: oldest first), `limit` of them
    from `offset` on.

    The `ready` entries are read from the newest down (`oldest`: from the oldest up) until
    enough pending jobs were found or a page held none (the delivered part of the stream, where
    no job waits); then they are merged by time with the index's members.
    """
    wanted = offset + limit
    index = cmd(
        "zrange" if oldest else "zrevrange", keys.status("pending"), 0, wanted - 1, withscores=True
    )
    (indexed,) = yield [index]
    found: list[tuple[int, bytes]] = [(int(score), jid) for jid, score in indexed]
    top, streamed = (b"-" if oldest else b"+"), 0
    while streamed < wanted:
        read = (
            cmd("xrange", keys.ready, min=top, count=SCAN_PAGE)
            if oldest
            else cmd("xrevrange", keys.ready, max=top, count=SCAN_PAGE)
        )
        (entries,) = yield [read]
        candidates = [(eid, f[b"id"]) for eid, f in entries if b"id" in f]
        # an entry anyone wrote may name no job, or bytes no job id is made of: read past
        replies = yield [
            cmd("hmget", keys.job(j.decode(errors="replace")), "status", "msg")
            for _, j in candidates
        ]
        hits = [
            (_entry_ms(eid), jid)
            for (eid, jid), (status, msg) in zip(candidates, replies, strict=True)
            if status == b"pending" and msg == eid
        ]
        found += hits
        streamed += len(hits)
        if not hits or len(entries) < SCAN_PAGE:
            break
        top = b"(" + entries[-1][0]
    found.sort(key=lambda t: t[0], reverse=not oldest)
    return [jid for _, jid in found[offset:wanted]]
