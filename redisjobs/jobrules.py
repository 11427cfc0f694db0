"""A job's rules beyond its policy: retention per outcome, a unique lock, idempotency, its
limit key and the jobs it waits for.

Each is optional and costs a job that sets none of them nothing in Redis: the enqueue row
carries only the rules a job sets, as (name, value) pairs after their count (0 for none, see
docs/wire-format.md), the job hash stores only those, and the scripts act on them only when
present (docs/architecture.md, "Retention, unique jobs and idempotency").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, get_args

from . import deps
from .deps import ParentPolicy

UniqueMode = Literal["until_start", "until_done", "while_queued"]
"""When a unique job's lock is released (besides its `unique_ttl`, which always ends it):

* ``until_start``: when a run of the job starts (Sidekiq Enterprise's ``unique_until:
  :start``), or the job ends without one (cancelled while waiting);
* ``until_done``: when the job reaches a final status (completed, failed for good, cancelled),
  through any retries (Sidekiq's default, ``:success``, extended to every end);
* ``while_queued``: whenever the job stops waiting to run: as ``until_start``, but a failed
  run that schedules a retry takes the lock again (when no other job took it meanwhile), so no
  copy is enqueued while one waits out its backoff.
"""
UNIQUE_MODES: frozenset[str] = frozenset(get_args(UniqueMode))


class TaskRules(TypedDict, total=False):
    """A job's rules but its limit key, as keywords of :meth:`redisjobs.App.task` (whose
    ``limit_key`` may be a function of the task's arguments) and of :class:`JobRules`.

    Attributes:
        keep_completed: how long a job that completed is kept instead of its `result_ttl`
            (seconds, or a :class:`Keep`'s `age`), and/or how many completed jobs the queue
            keeps at most (a :class:`Keep`'s `count`); a mapping ``{"age", "count"}`` works
            too.
        keep_failed: the same for jobs that failed for good.
        unique: a :data:`UniqueMode`: while the job holds the lock of its `unique_key`,
            enqueueing another job with that key writes nothing and returns this one, marked
            :attr:`~redisjobs.Job.duplicate`.
        unique_key: the lock's key (default: derived from the kind and the payload).
        unique_ttl: seconds the lock lasts at most, whatever happens (default 3600).
        idempotency_ttl: seconds after the job ended during which an enqueue of its `job_id`
            that sets an `idempotency_ttl` too is still a duplicate, once the hash is gone.
    """

    keep_completed: float | Keep | Mapping[str, float] | None
    keep_failed: float | Keep | Mapping[str, float] | None
    unique: UniqueMode | None
    unique_key: str | None
    unique_ttl: float | None
    idempotency_ttl: float | None


class JobRules(TaskRules, total=False):
    """A job's rules, as keywords of :meth:`redisjobs.Client.enqueue` (None, the default of
    each, leaves it unset): those of :class:`TaskRules`, and

    Attributes:
        limit_key: the job's limit key (a tenant, a customer): jobs of different keys are
            served round-robin, and the key's limits (:meth:`redisjobs.Client.set_limit`)
            apply to it.
        depends_on: the jobs it waits for (its parents: ids of its own queue, ``"queue/id"``,
            jobs or task handles, see :func:`~redisjobs.deps.ref_of`): it is ``waiting``
            until they all completed, then runs. Each must exist when it is enqueued.
        on_parent_failure: what it does when a parent fails or is cancelled (a
            :data:`~redisjobs.deps.ParentPolicy`; default ``fail``).
    """

    limit_key: str | None
    depends_on: Iterable[Any] | None
    on_parent_failure: ParentPolicy | None


RULE_OPTIONS = frozenset(JobRules.__annotations__)
"""The enqueue options this module turns into :data:`RuleValues`."""

DEFAULT_UNIQUE_TTL = 3600.0
"""Seconds a unique lock lasts at most when the job gives no `unique_ttl`."""

MAX_SECONDS = 10 * 365 * 86400.0
"""The longest age or TTL a rule takes (ten years)."""

MAX_KEEP_COUNT = 10**9
"""The largest count of jobs an outcome keeps."""

UNIQUE_KEY = re.compile(r"[A-Za-z0-9_@+=.:/-]{1,200}")
"""A unique key's rule (``_lib.lua``'s check_rules holds it too): it becomes part of a key."""

LIMIT_KEY = re.compile(r"[A-Za-z0-9_@+=:/][A-Za-z0-9_@+=.:/-]{0,199}")
"""A limit key's rule (``_lib.lua``'s check_rules holds it too): it becomes part of a key."""


def check_limit_key(key: object) -> str:
    """`key` when it is a valid limit key.

    Raises:
        ValueError: not 1-200 characters of ``A-Z a-z 0-9 _ - . @ + = : /``, or starting
            with ``-``, ``.`` or ``*``.
    """
    if not (isinstance(key, str) and LIMIT_KEY.fullmatch(key)):
        raise ValueError(
            "limit_key must be 1-200 characters of A-Z a-z 0-9 _ - . @ + = : /, "
            f"not starting with - . or *, got {key!r}"
        )
    return key


@dataclass(frozen=True, slots=True)
class Keep:
    """How long and how many jobs of one outcome stay (``keep_completed``, ``keep_failed``).

    Args:
        age: seconds each job is kept after it ended (its hash and log expire then); None
            keeps the job's `result_ttl`.
        count: at most this many jobs of that outcome stay in the queue (the ones that expire
            last; with one TTL, the most recent); None for no bound.
    """

    age: float | None = None
    count: int | None = None


RULE_NAMES = (
    "completed_ttl_ms",
    "completed_keep",
    "failed_ttl_ms",
    "failed_keep",
    "unique",
    "unique_key",
    "unique_ttl_ms",
    "idempotency_ttl_ms",
    "limit_key",
    "depends_on",
    "flow",
    "pass_result",
)
"""The names of the rules on the wire (``_lib.lua``'s RULES; a test holds them to it)."""

RuleValues = dict[str, Any]
"""The rules a job sets, by their :data:`RULE_NAMES`; a rule left out is unset."""

RulePairs = tuple[tuple[str, int | str], ...]
"""The rules as an :class:`~redisjobs.wire.EnqueueRow` carries them: (name, value) pairs."""


def _seconds_ms(value: object, name: str) -> int:
    """`value` seconds (0 < value <= MAX_SECONDS) as integer ms (at least 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not 0 < value <= MAX_SECONDS:
        raise ValueError(f"{name} must be > 0 and at most {MAX_SECONDS:.0f} seconds, got {value}")
    return max(1, round(value * 1000))


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} count must be an int, got {type(value).__name__}")
    if not 1 <= value <= MAX_KEEP_COUNT:
        raise ValueError(f"{name} count must be 1..{MAX_KEEP_COUNT}, got {value}")
    return value


def keep_of(value: object, name: str) -> tuple[int, int]:
    """A ``keep_*`` option as (ttl ms, count), each 0 when unset.

    Takes seconds (a number), a :class:`Keep`, or a mapping with ``age`` and/or ``count`` (the
    HTTP API's JSON).

    Raises:
        TypeError: another type, or an unknown key of a mapping.
        ValueError: an age or count out of range, or neither given.
    """
    age: object
    count: object = None
    if isinstance(value, Keep):
        age, count = value.age, value.count
    elif isinstance(value, Mapping):
        unknown = set(value) - {"age", "count"}
        if unknown:
            extra = ", ".join(sorted(map(str, unknown)))
            raise TypeError(f"{name} takes age and count, not {extra}")
        age, count = value.get("age"), value.get("count")
    else:
        age = value
    if age is None and count is None:
        raise ValueError(f"{name} needs an age (seconds) or a count")
    return (
        0 if age is None else _seconds_ms(age, f"{name} age"),
        0 if count is None else _count(count, name),
    )


def derived_key(kind: str, payload: bytes) -> str:
    """The unique key of a job that gives none: a SHA-1 of its kind and encoded payload, so
    jobs of the same kind with the same arguments share it (the queue is in the lock's key)."""
    return hashlib.sha1(kind.encode() + b"\0" + payload, usedforsecurity=False).hexdigest()


def _unique(opts: Mapping[str, Any]) -> tuple[str, str, int]:
    mode, key, ttl = opts.get("unique"), opts.get("unique_key"), opts.get("unique_ttl")
    if mode is None:
        if key is not None or ttl is not None:
            raise ValueError("unique_key and unique_ttl need unique= (a unique mode)")
        return "", "", 0
    if mode not in UNIQUE_MODES:
        raise ValueError(f"unique must be one of {', '.join(sorted(UNIQUE_MODES))}, got {mode!r}")
    if key is not None and not (isinstance(key, str) and UNIQUE_KEY.fullmatch(key)):
        raise ValueError(
            f"unique_key must be 1-200 characters of A-Z a-z 0-9 _ - . : / @ + =, got {key!r}"
        )
    ttl_ms = _seconds_ms(DEFAULT_UNIQUE_TTL if ttl is None else ttl, "unique_ttl")
    return str(mode), key or "", ttl_ms


def rules_of(opts: Mapping[str, Any]) -> RuleValues:
    """The rules of one job's options (None values are unset), empty for a job without any;
    a unique job's key is left out when it is to be derived (the row builder derives it from
    the encoded payload).

    Raises:
        TypeError, ValueError: an invalid rule (nothing is written).
    """
    if not RULE_OPTIONS.intersection(k for k, v in opts.items() if v is not None):
        return {}
    out: RuleValues = {}
    for outcome in ("completed", "failed"):
        given = opts.get(f"keep_{outcome}")
        if given is not None:
            ttl, keep = keep_of(given, f"keep_{outcome}")
            if ttl:
                out[f"{outcome}_ttl_ms"] = ttl
            if keep:
                out[f"{outcome}_keep"] = keep
    mode, key, ttl_ms = _unique(opts)
    if mode:
        out.update(unique=mode, unique_key=key, unique_ttl_ms=ttl_ms)
    idem = opts.get("idempotency_ttl")
    if idem is not None:
        out["idempotency_ttl_ms"] = _seconds_ms(idem, "idempotency_ttl")
    limit_key = opts.get("limit_key")
    if limit_key is not None:
        out["limit_key"] = check_limit_key(limit_key)
    out.update(_parents(opts))
    return out


def _parents(opts: Mapping[str, Any]) -> RuleValues:
    """The ``depends_on`` rule of one job's options, if it sets one."""
    parents, policy = opts.get("depends_on"), opts.get("on_parent_failure")
    if parents is not None:
        return {"depends_on": deps.encode(deps.edges_of(parents, policy))}
    if policy is not None:
        raise ValueError("on_parent_failure needs depends_on")
    return {}
