"""The one JSON form of payloads, results and events, as the HTTP API, the pages and the command
line show them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import msgpack
import pytest

from redisjobs import JobStatus
from redisjobs.cli.render import to_json
from redisjobs.jsonable import jsonable

CASES: dict[str, tuple[Any, Any]] = {
    "aware datetime, in UTC": (
        datetime(2026, 1, 1, 1, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
        "2025-12-31T23:00:00.000005+00:00",
    ),
    "naive datetime, as it reads": (datetime(2026, 1, 1, 1, 0), "2026-01-01T01:00:00"),
    "date": (date(9999, 12, 31), "9999-12-31"),
    "Decimal, every digit": (Decimal("-0.000100"), "-0.000100"),
    "Decimal NaN": (Decimal("-sNaN"), "-sNaN"),
    "UUID": (uuid.UUID(int=255), "00000000-0000-0000-0000-0000000000ff"),
    "tuple, nested": ((1, (2, [3])), [1, [2, [3]]]),
    "set, sorted": ({"b", "c", "a"}, ["a", "b", "c"]),
    "frozenset of tuples, sorted": (frozenset({(2, "b"), (1, "z")}), [[1, "z"], [2, "b"]]),
    "set of datetimes, sorted": (
        {datetime(2021, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC)},
        ["2020-01-01T00:00:00+00:00", "2021-01-01T00:00:00+00:00"],
    ),
    "empty set": (set(), []),
    "bytes": (b"\x00\xff", {"$bytes": "AP8="}),
    "bytearray": (bytearray(b"\x01"), {"$bytes": "AQ=="}),
    "unknown ext": (msgpack.ExtType(9, b"\x02"), {"$ext": 9, "$bytes": "Ag=="}),
    "msgpack timestamp": (msgpack.Timestamp(1, 0), "1970-01-01T00:00:01+00:00"),
    "floats JSON has no form for": (
        [float("nan"), float("inf"), -float("inf")],
        ["nan", "inf", "-inf"],
    ),
    "keys": (
        {1: "a", (1, 2): "b", date(2020, 1, 1): "c", uuid.UUID(int=0): "d", None: "e"},
        {
            "1": "a",
            "(1, 2)": "b",
            "2020-01-01": "c",
            "00000000-0000-0000-0000-000000000000": "d",
            "None": "e",
        },
    ),
    "what JSON holds stays": (
        [None, True, 3, "é", {"k": [1.5]}],
        [None, True, 3, "é", {"k": [1.5]}],
    ),
    "anything else: its str()": (complex(1, 2), "(1+2j)"),
}


@pytest.mark.parametrize(("value", "shown"), CASES.values(), ids=CASES.keys())
def test_each_value_as_json(value: Any, shown: Any) -> None:
    converted = jsonable(value)
    assert converted == shown
    assert json.loads(json.dumps(converted, allow_nan=False)) == shown  # JSON, strictly


def test_a_set_whose_items_do_not_sort_comes_as_it_iterates() -> None:
    assert sorted(jsonable({1, "a", 2}), key=str) == [1, 2, "a"]


def test_the_command_line_shows_values_the_same_way() -> None:
    document = {"status": JobStatus.COMPLETED, "result": {"at": date(2020, 1, 1), "ids": {2, 1}}}
    assert json.loads(to_json(document)) == {
        "status": "completed",
        "result": {"at": "2020-01-01", "ids": [1, 2]},
    }
    assert json.loads(to_json({(1, 2): (Decimal("1.0"),)})) == {"(1, 2)": ["1.0"]}
