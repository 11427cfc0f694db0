"""Reading API requests: JSON bodies, job objects and their options, checked field by field.

Each check answers 422 with a message that names the field and what it must be; the limits
here are the ones :mod:`.openapi` publishes.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..deps import POLICIES
from ..errors import InvalidJobId
from ..jobrules import LIMIT_KEY, RULE_OPTIONS, UNIQUE_KEY, UNIQUE_MODES, rules_of
from ..names import JOB_ID_RULE, check_job_id, check_queue_name
from ..options import MAX_PRIORITY

WORKER_ID = re.compile(r"^[A-Za-z0-9_.:@+=\-]{1,200}$")
"""The worker ids the API takes (the ids workers make: host, pid and a random part)."""
MAX_BATCH = 1000
"""Jobs in one ``jobs:batch`` request at most."""
MAX_LIST = 500
YEAR = 365 * 86400.0
INT_MIN, UINT_MAX = -(2**63), 2**64 - 1
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
NUMBERS: dict[str, tuple[bool, float, float]] = {
    # option: (integer, minimum, maximum); times in seconds, `at` in Unix time
    "max_retries": (True, 0, 1000),
    "retry_delay": (False, 0, YEAR),
    "retry_backoff": (False, 1, 100),
    "retry_jitter": (False, 0, 1),
    "timeout": (False, 0.001, 10 * YEAR),
    "result_ttl": (False, 0.001, 10 * YEAR),
    "delay": (False, 0, 10 * YEAR),
    "at": (False, 0, 253402300799),  # up to the last second of year 9999
    "priority": (True, 0, MAX_PRIORITY),
    "unique_ttl": (False, 0.001, 10 * YEAR),
    "idempotency_ttl": (False, 0.001, 10 * YEAR),
}
RULES = {
    # option: what it takes (checked by redisjobs.jobrules, as Client.enqueue checks it)
    "keep_completed": "seconds, or an object with age (seconds) and/or count",
    "keep_failed": "seconds, or an object with age (seconds) and/or count",
    "unique": " or ".join(sorted(UNIQUE_MODES)),
    "unique_key": f"a string matching {UNIQUE_KEY.pattern}",
    "limit_key": f"a string matching {LIMIT_KEY.pattern}",
    "depends_on": "a list of job ids of the queue or queue/id strings",
    "on_parent_failure": " or ".join(sorted(POLICIES)),
}

MAX_AGE = 10**10
"""The largest ``older_than`` (seconds) a purge request takes: over 300 years."""


class Invalid(HTTPException):
    """A request that is well formed but says something we cannot do (422)."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, detail)


class JobSpec(NamedTuple):
    """One job of a request: what :meth:`Client.enqueue_many` takes."""

    kind: str
    payload: Any
    options: dict[str, Any]


def queue_name(name: str) -> str:
    """`name` when it is a valid queue name (422 otherwise)."""
    try:
        return check_queue_name(name)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def job_id(value: Any, where: str = "job id") -> str:
    """`value` when it is a valid job id (422 otherwise, naming `where`)."""
    try:
        return check_job_id(value)
    except InvalidJobId:
        raise Invalid(f"{where} must be {JOB_ID_RULE}") from None


def _number(name: str, value: Any, where: str) -> float | int:
    integer, low, high = NUMBERS[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"{where}.{name} must be a number, got {json.dumps(value)}")
    if integer and not float(value).is_integer():
        raise Invalid(f"{where}.{name} must be a whole number, got {value}")
    if not low <= value <= high:
        raise Invalid(f"{where}.{name} must be between {low:g} and {high:g}, got {value}")
    return int(value) if integer else float(value)


def job_options(raw: Any, where: str = "options") -> dict[str, Any]:
    """The keyword arguments of :meth:`Client.enqueue` for an ``options`` object.

    Raises:
        Invalid: an unknown option or a value out of range.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Invalid(f"{where} must be an object")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name == "job_id":
            out[name] = job_id(value, f"{where}.job_id")
        elif name in NUMBERS:
            out[name] = _number(name, value, where)
        elif name in RULES:
            out[name] = value
        else:
            known = ", ".join(["job_id", *NUMBERS, *RULES])
            raise Invalid(f"{where} has an unknown option {name!r} (known: {known})")
    _check_rules(out, where)
    if "at" in out:
        out["at"] = datetime.fromtimestamp(out["at"], UTC)
    return out


def _check_rules(options: dict[str, Any], where: str) -> None:
    """Check the rules among `options` as :meth:`Client.enqueue` would (422 otherwise)."""
    rules = {k: v for k, v in options.items() if k in RULE_OPTIONS}
    for name, value in rules.items():
        if isinstance(value, dict) and None in value.values():
            raise Invalid(f"{where}.{name} takes no nulls: leave age or count out instead")
        count = value.get("count") if isinstance(value, dict) else None
        if isinstance(count, float) and count.is_integer():  # JSON's 5.0 is an integer
            options[name] = rules[name] = {**value, "count": int(count)}
    try:
        rules_of(rules)
    except (TypeError, ValueError) as exc:
        raise Invalid(f"{where}: {exc}") from None


def job_spec(raw: Any, where: str = "body") -> JobSpec:
    """The job a JSON object describes (``{"kind", "payload", "options"}``).

    Raises:
        Invalid: not an object, no kind, or a field we do not know.
    """
    if not isinstance(raw, dict):
        raise Invalid(f"{where} must be a JSON object with kind, payload and options")
    extra = set(raw) - {"kind", "payload", "options"}
    if extra:
        raise Invalid(f"{where} has unknown field(s): {', '.join(sorted(extra))}")
    kind = raw.get("kind")
    if not isinstance(kind, str) or not 1 <= len(kind) <= 200:
        raise Invalid(f"{where}.kind must be a string of 1-200 characters")
    return JobSpec(kind, raw.get("payload"), job_options(raw.get("options"), f"{where}.options"))


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity; JSON has neither, and msgpack floats should not.
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int | float:
    # msgpack holds 64-bit integers; a larger one becomes a float, as in JavaScript.
    value = int(text)
    if INT_MIN <= value <= UINT_MAX:
        return value
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def _scrub(value: Any) -> Any:
    """`value` with each lone surrogate (an escape JSON allows, Unicode not) made U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


async def read_json(request: Request) -> Any:
    """The request's JSON body (400 when unreadable, 415 when not JSON).

    Decoded as most JSON readers do, so that anything JSON allows can be stored as msgpack:
    integers beyond 64 bits become floats, lone surrogates become U+FFFD (as in Go).
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, "send the body as application/json")
    body = await request.body()
    try:
        value = json.loads(body, parse_constant=_reject_constant, parse_int=_int)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, f"the body is not valid JSON: {exc}") from None
    return _scrub(value) if _SURROGATE.search(body) else value


def count(text: str | None, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter in [low, high] (`default` when absent; 422 otherwise)."""
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise Invalid(f"{name} must be a whole number between {low} and {high}")
    return int(text)
