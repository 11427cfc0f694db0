"""The enqueue row: one job's values for ``enqueue.lua``, by name (docs/wire-format.md).

A row is built here, carried by name through the client, and flattened into a script's ARGV
(``enqueue.lua``'s, or ``fire.lua``'s for a schedule's jobs) in one place only, :func:`row_args`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from .executors._callspec import check_call_payload
from .jobrules import RulePairs, derived_key
from .options import DEFAULT_PRIORITY, JobOptions, Policy, new_job_id
from .scriptcall import Arg
from .serialization import pack_payload


class EnqueueRow(NamedTuple):
    """One job as ``enqueue.lua`` takes it; the field order is the ARGV order.

    The fields from `max_retries` to `result_ttl_ms` are a :class:`~redisjobs.options.Policy`'s,
    in its order, so a row is built from one unpacked. The last, `rules`, goes on the wire as
    its count, then its pairs, so a job that sets no rule sends one value more than the fixed
    twelve.
    """

    job_id: str
    kind: str
    payload: bytes
    """The msgpack-encoded payload."""
    max_retries: int
    retry_delay_ms: int
    retry_backoff: float
    retry_jitter: float
    timeout_ms: int
    """0 for none."""
    result_ttl_ms: int
    delay_ms: int = 0
    at_ms: int = 0
    """Epoch ms the job is due at, 0 for none (then `delay_ms` counts)."""
    priority: int = DEFAULT_PRIORITY
    """0..2**21, lower runs sooner; stored on the job only when not the default (100)."""
    rules: RulePairs = ()
    """The rules the job sets, (name, value) pairs (:data:`~redisjobs.jobrules.RULE_NAMES`);
    empty for a job that sets none."""

    def rule(self, name: str) -> int | str | None:
        """The value of rule `name` (a :data:`~redisjobs.jobrules.RULE_NAMES` name), or None
        when the row does not set it."""
        return next((v for k, v in self.rules if k == name), None)

    @property
    def delayed(self) -> bool:
        """Whether the job is scheduled for later rather than runnable at once."""
        return bool(self.delay_ms or self.at_ms)


def build_row(
    kind: str,
    payload: Any,
    opts: Mapping[str, Any] | None,
    defaults: JobOptions,
    policy: Policy,
    max_payload_bytes: int,
) -> EnqueueRow:
    """Validate and encode one job for ``enqueue.lua``.

    Args:
        kind: the executor that runs it.
        payload: its input, encoded here (msgpack).
        opts: its own options (:meth:`redisjobs.Client.enqueue`'s keywords), if any.
        defaults: the options it gets where `opts` names none.
        policy: `defaults` already encoded, for a job without options of its own.
        max_payload_bytes: the cap on the encoded payload.

    Raises:
        ValueError: an empty kind, or an invalid option.
        CallRefused: a ``call`` payload no worker would run.
        SerializationError: a payload msgpack cannot encode (PayloadTooLarge: over the cap).
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"job kind must be a non-empty string, got {kind!r}")
    if kind == "call":
        check_call_payload(payload)
    packed = pack_payload(payload, max_payload_bytes)
    if not opts:  # the common case, on the hot path of a bulk enqueue: nothing to merge
        return EnqueueRow(new_job_id(), kind, packed, *policy)
    job = defaults.with_overrides(opts)
    rules = job.rules or {}
    if rules.get("unique") and not rules["unique_key"]:
        rules = {**rules, "unique_key": derived_key(kind, packed)}
    return EnqueueRow(
        job.job_id,
        kind,
        packed,
        *job.policy,
        job.delay_ms,
        job.at_ms,
        job.priority,
        tuple(rules.items()),
    )


def row_args(rows: Iterable[EnqueueRow]) -> list[Arg]:
    """The one place rows become ARGV values: each row's fields in their order, but its rules
    as their count, then their pairs (docs/wire-format.md)."""
    args: list[Arg] = []
    for row in rows:
        args += cast("tuple[Arg, ...]", row)  # its last value, the rules, is replaced below
        rules = row.rules
        if rules:
            args[-1] = len(rules)
            for pair in rules:
                args += pair
        else:  # the common row, on the hot path of a bulk enqueue
            args[-1] = 0
    return args


def due_in_ms(rows: Sequence[EnqueueRow]) -> list[int]:
    """Milliseconds from now until each job of `rows` is due (by its delay or its time)."""
    now_ms = time.time() * 1000
    return [max(r.delay_ms, round(r.at_ms - now_ms) if r.at_ms else 0) for r in rows]
