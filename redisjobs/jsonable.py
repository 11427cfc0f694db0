"""Payloads, results and events as JSON: the one conversion the HTTP API, the dashboard's pages
and the command line's ``--json`` all use.

A payload holds what msgpack and :mod:`.exttypes` hold; JSON holds less, so the gap is bridged
the same way everywhere:

* a datetime becomes ISO 8601 text (an aware one in UTC, a naive one as it reads), a date
  ``YYYY-MM-DD``; a Decimal and a UUID their ``str()`` (a Decimal keeps every digit as text);
* a tuple becomes an array, a set or frozenset an array too, sorted when its items sort;
* bytes become ``{"$bytes": "<base64>"}``, an ext of a code nothing here knows
  ``{"$ext": <code>, "$bytes": "<base64>"}``;
* NaN and the infinities become the strings ``"nan"``, ``"inf"``, ``"-inf"``;
* map keys that are not strings become their string form (above), or their ``str()``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from msgpack import ExtType, Timestamp


def jsonable(value: Any) -> Any:
    """`value` with only what JSON holds (see the module docstring); anything else its str()."""
    if value is None or isinstance(value, str | bool | int):
        return value
    for kind, convert in _CONVERSIONS:
        if isinstance(value, kind):
            return convert(value)
    return str(value)  # Decimal, UUID, and whatever a caller passes that JSON has no form for


_EXTRAS = (datetime, date, Decimal, UUID, set, frozenset)


def json_default(value: Any) -> Any:
    """For ``json.dumps(default=...)`` where JSON is the wire (an HTTP job's body): the types
    msgpack payloads add, as :func:`jsonable` shows them; a TypeError for the rest (bytes, an
    object), which JSON has no form for."""
    if isinstance(value, _EXTRAS):
        return jsonable(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    shown = jsonable(key)
    return shown if isinstance(shown, str) else str(key)


def _base64(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(bytes(data)).decode()


def _time(value: datetime) -> str:
    return value.isoformat() if value.utcoffset() is None else value.astimezone(UTC).isoformat()


def _sorted(items: Iterable[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:  # items of kinds that do not compare (1 and "a"): as they come
        return list(items)


_CONVERSIONS: tuple[tuple[type | tuple[type, ...], Callable[[Any], Any]], ...] = (
    (float, lambda v: v if math.isfinite(v) else str(v)),
    ((bytes, bytearray, memoryview), lambda v: {"$bytes": _base64(v)}),
    (Mapping, lambda v: {_key(k): jsonable(item) for k, item in v.items()}),
    (ExtType, lambda v: {"$ext": v.code, "$bytes": _base64(v.data)}),  # a tuple: before tuples
    ((list, tuple), lambda v: [jsonable(item) for item in v]),
    ((set, frozenset), lambda v: [jsonable(item) for item in _sorted(v)]),
    (datetime, _time),  # a date: before dates
    (date, date.isoformat),
    (Timestamp, lambda v: _time(v.to_datetime())),  # msgpack's own (ext -1), from elsewhere
)
