"""Rate limits, per-key concurrency and fair share: the settings and their read model.

A queue's flow settings are the hash ``rj:{Q}:limits`` (:attr:`QueueKeys.limits`): field ``q``
is the queue-wide rate spec, ``k:<key>`` one limit key's, ``k:<task>:*`` every key of one
task's, ``k:*`` every other key's, ``max_pending`` the backlog bound. A rate spec is the text
``"<rate> <per_ms> <burst> <max_running>"`` (0 = none). ``start`` reads them at every lease
(docs/architecture.md, "Rate limits and fair share"), so a change takes effect at once,
without restarting workers. Each call is a flow, so the sync client says the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .jobrules import check_limit_key
from .keys import QueueKeys
from .roundtrips import Flow, cmd

QUEUE_FIELD = "q"
MAX_PENDING_FIELD = "max_pending"
MAX_COUNT = 10**9
"""The largest burst, max_running and max_pending taken."""

_UNITS = {"s": 1000.0, "m": 60000.0, "h": 3600000.0, "d": 86400000.0}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*([smhd])\s*")
RUNNING_READ = 10_000
"""Running jobs whose limit keys :func:`key_states_flow` looks at, at most."""


def parse_rate(text: str) -> tuple[float, float]:
    """A rate string (``"100/s"``, ``"5/m"``, ``"1000/h"``, ``"10/2s"``) as (rate, per seconds).

    Raises:
        ValueError: anything else, or a rate or period of 0.
    """
    m = _RATE.fullmatch(text) if isinstance(text, str) else None
    if not m or float(m[1]) <= 0 or (m[2] is not None and float(m[2]) <= 0):
        raise ValueError(f"a rate is '<count>/<period>' like '100/s', '5/m', '10/2s', got {text!r}")
    return float(m[1]), float(m[2] or 1) * _UNITS[m[3]] / 1000


@dataclass(frozen=True, slots=True)
class Limit:
    """One rate spec of a queue (:meth:`redisjobs.Client.limits`).

    Attributes:
        key: None for the queue-wide limit (every job of the queue together), ``"*"`` for every
            key without a spec of its own, ``"<task>:*"`` for every key of one task, else the
            limit key it applies to.
        rate: jobs that may start per `per` seconds (None: no rate limit).
        per: the period of `rate`, seconds.
        burst: jobs that may start at once after a quiet spell (None: `rate`).
        max_running: jobs of one key that may run at once, fleet wide (None: no bound).
        max_pending: the queue's bound on its backlog (the same on every row).
    """

    key: str | None
    rate: float | None
    per: float
    burst: int | None
    max_running: int | None
    max_pending: int | None


@dataclass(frozen=True, slots=True)
class KeyState:
    """A limit key with jobs waiting or running (:meth:`redisjobs.Client.limit_keys`).

    Attributes:
        key: the limit key.
        backlog: its jobs waiting to start.
        running: its jobs running now.
        next_at: when it may next be served (epoch seconds on Redis's clock; 0: now), or None
            when it is off the schedule (at its max_running, or without backlog).
    """

    key: str
    backlog: int
    running: int
    next_at: float | None


def limit_field(key: str | None) -> str:
    """The field of ``limits`` that holds the spec of `key` (see :class:`Limit`).

    Raises:
        ValueError: `key` is no limit key, ``"*"`` nor ``"<limit key>:*"``.
    """
    if key is None:
        return QUEUE_FIELD
    if key != "*":
        check_limit_key(key.removesuffix(":*") if key.endswith(":*") else key)
    return "k:" + key


def _count(value: int | None, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ValueError(f"{name} must be an int 1..{MAX_COUNT}, got {value!r}")
    return value


def spec_text(rate: float | None, per: float, burst: int | None, max_running: int | None) -> str:
    """The spec text of a rate limit, checked.

    Raises:
        ValueError: a rate or period <= 0, a burst or max_running out of 1..MAX_COUNT, or
            neither a rate nor a max_running.
    """
    if rate is None and max_running is None:
        raise ValueError("a limit needs a rate or a max_running")
    if rate is not None and not (isinstance(rate, int | float) and rate > 0):
        raise ValueError(f"rate must be a number > 0, got {rate!r}")
    if not (isinstance(per, int | float) and per > 0):
        raise ValueError(f"per must be seconds > 0, got {per!r}")
    if burst is not None and rate is None:
        raise ValueError("burst needs a rate")
    per_ms = round(per * 1000, 3)
    return f"{rate or 0:g} {per_ms:g} {_count(burst, 'burst')} {_count(max_running, 'max_running')}"


def set_limit_flow(
    keys: QueueKeys,
    rate: float | None,
    per: float,
    burst: int | None,
    key: str | None,
    max_running: int | None,
    max_pending: int | None,
) -> Flow[None]:
    """Write a rate spec (when a rate or max_running is given) and/or the queue's max_pending.

    Raises:
        ValueError: an invalid spec, or max_pending with a key (it bounds the whole queue).
    """
    if max_pending is not None and key is not None:
        raise ValueError("max_pending bounds the queue: give it without key=")
    if max_running is not None and key is None:
        raise ValueError("max_running bounds one key's jobs: give it with key= ('*': every key)")
    fields: dict[str, Any] = {}
    if rate is not None or max_running is not None or max_pending is None:
        fields[limit_field(key)] = spec_text(rate, per, burst, max_running)
    if max_pending is not None:
        fields[MAX_PENDING_FIELD] = _count(max_pending, "max_pending")
    yield [cmd("hset", keys.limits, mapping=fields)]


def clear_limit_flow(keys: QueueKeys, key: str | None) -> Flow[bool]:
    """Remove the spec of `key` (None: the queue-wide one, and max_pending) and its state, so
    that its jobs start at full speed at once; True when there was one."""
    field = limit_field(key)
    gone = [field, MAX_PENDING_FIELD] if key is None else [field]
    removed, _ = yield [cmd("hdel", keys.limits, *gone), cmd("delete", keys.tat(field))]
    return bool(removed)


def _limit(field: str, text: str, max_pending: int | None) -> Limit | None:
    parts = text.split()
    if len(parts) != 4 or not (field == QUEUE_FIELD or field.startswith("k:")):
        return None
    rate, per_ms, burst, running = (float(p) for p in parts)
    return Limit(
        key=None if field == QUEUE_FIELD else field[2:],
        rate=rate or None,
        per=per_ms / 1000,
        burst=int(burst) or None,
        max_running=int(running) or None,
        max_pending=max_pending,
    )


def limits_flow(keys: QueueKeys) -> Flow[list[Limit]]:
    """The queue's rate specs, the queue-wide one first (a row without rate and max_running
    when only max_pending is set)."""
    (raw,) = yield [cmd("hgetall", keys.limits)]
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    pending = fields.pop(MAX_PENDING_FIELD, None)
    max_pending = int(pending) if pending and pending.isdigit() else None
    rows = [lim for f, t in sorted(fields.items()) if (lim := _limit(f, t, max_pending))]
    rows.sort(key=lambda lim: (lim.key is not None, lim.key or ""))
    if max_pending is not None and (not rows or rows[0].key is not None):
        rows.insert(0, Limit(None, None, 1.0, None, None, max_pending))
    return rows


def key_states_flow(keys: QueueKeys) -> Flow[list[KeyState]]:
    """The limit keys with backlog or running jobs, by key.

    Without a SCAN: a key with backlog is on the schedule (``keys``) unless it is at its
    max_running, and then it has running jobs, whose hashes name it (the running index is read
    up to :data:`RUNNING_READ` jobs)."""
    scheduled, running = yield [
        cmd("zrange", keys.limit_keys, 0, -1, withscores=True),
        cmd("zrange", keys.status("running"), 0, RUNNING_READ - 1),
    ]
    named = yield [cmd("hget", keys.job(j.decode()), "limit_key") for j in running]
    due = {k.decode(): s for k, s in scheduled}
    order = sorted(set(due) | {k.decode() for k in named if k})
    counts = yield [
        c for k in order for c in (cmd("zcard", keys.key_jobs(k)), cmd("scard", keys.key_active(k)))
    ]
    return _states(order, counts, due)


def _states(order: Sequence[str], counts: Sequence[int], due: dict[str, float]) -> list[KeyState]:
    out = []
    for i, key in enumerate(order):
        score = due.get(key)
        at = None if score is None else score / 1000
        out.append(KeyState(key, int(counts[2 * i]), int(counts[2 * i + 1]), at))
    return out


@dataclass(frozen=True, slots=True)
class TaskLimit:
    """What ``@app.task(rate_limit=..., limit_key=..., max_running=...)`` declares.

    A job of the task carries the limit key ``"<task>:<value>"`` (`key_of` of its arguments, or
    a constant), or ``"<task>"`` without `key_of`; the rate and max_running are upserted by the
    app's workers at start as the spec of every such key (``k:<task>:*``, or ``k:<task>``).
    """

    task: str
    rate: float | None
    per: float
    max_running: int | None
    key_of: Callable[..., Any] | str | None

    @classmethod
    def build(
        cls,
        task: str,
        rate_limit: str | None,
        limit_key: Callable[..., Any] | str | None,
        max_running: int | None,
    ) -> TaskLimit | None:
        """The task's limit, None when it declares none.

        Raises:
            ValueError: a bad rate string, max_running or constant key, or a task name that
                cannot begin a limit key.
        """
        if rate_limit is None and limit_key is None and max_running is None:
            return None
        rate, per = (None, 1.0) if rate_limit is None else parse_rate(rate_limit)
        _count(max_running, "max_running")
        check_limit_key(task if limit_key is None or callable(limit_key) else f"{task}:{limit_key}")
        return cls(task, rate, per, max_running, limit_key)

    def key(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """The limit key of a job with these arguments.

        Raises:
            ValueError: `key_of` gave a value that makes no valid key.
        """
        if self.key_of is None:
            return self.task
        value = self.key_of(*args, **kwargs) if callable(self.key_of) else self.key_of
        return check_limit_key(f"{self.task}:{value}")

    def upsert(self, keys: QueueKeys) -> Flow[None] | None:
        """The flow writing the task's spec (None: it has only a key, no limit)."""
        if self.rate is None and self.max_running is None:
            return None
        key = self.task if self.key_of is None else f"{self.task}:*"
        return set_limit_flow(keys, self.rate, self.per, None, key, self.max_running, None)
