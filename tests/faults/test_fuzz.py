"""Payload round-trip fuzz: whatever a producer enqueues comes back equal, or the enqueue fails
with a documented error and the queue's keyspace is unchanged."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisjobs import Client, PayloadTooLarge, SerializationError
from redisjobs.serialization import DEFAULT_MAX_PAYLOAD_BYTES
from redisjobs.testing import unique_queue

pytestmark = pytest.mark.faults

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # past 64 bits: not encodable
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=50)
    | st.binary(max_size=50)
)
KEYS = st.text(max_size=10) | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=10)
PAYLOADS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=40,
)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and types kept (True is not 1, bytes are not str)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


class Harness:
    """One client and event loop shared by every example of a test."""

    def __init__(self, url: str) -> None:
        self.runner = asyncio.Runner()
        self.client = Client(url, queue=unique_queue("fuzz"))
        self.runner.run(self.client.connect())

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    async def keyspace(self) -> list[bytes]:
        found: Any = [k async for k in self.client.redis.scan_iter(match=f"*{self.client.queue}*")]
        return sorted(found)

    async def round_trip(self, payload: Any) -> None:
        before = await self.keyspace()
        try:
            job = await self.client.enqueue("call", payload)
        except (SerializationError, PayloadTooLarge):
            assert await self.keyspace() == before  # nothing partial
            return
        got = await self.client.get(job.id)
        assert got is not None and got.error is None
        assert same(got.payload, payload), (got.payload, payload)

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.close()


@pytest.fixture
def harness(url: str) -> Iterator[Harness]:
    h = Harness(url)
    yield h
    h.close()


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(payload=PAYLOADS)
def test_payloads_round_trip_or_fail_cleanly(harness: Harness, payload: Any) -> None:
    harness.run(harness.round_trip(payload))


@SETTINGS
@given(extra=st.integers(min_value=-16, max_value=16))
def test_sizes_around_the_cap(harness: Harness, extra: int) -> None:
    # A bin32 payload takes five bytes of header: this lands on both sides of the cap.
    payload = b"x" * (DEFAULT_MAX_PAYLOAD_BYTES - 5 + extra)
    harness.run(harness.round_trip(payload))
    if extra > 0:
        with pytest.raises(PayloadTooLarge):
            harness.run(harness.client.enqueue("call", payload))


@SETTINGS
@given(depth=st.integers(min_value=490, max_value=530))
def test_nesting_depth_around_msgpacks_limit(harness: Harness, depth: int) -> None:
    payload: Any = "leaf"
    for _ in range(depth):
        payload = [payload]
    harness.run(harness.round_trip(payload))


@pytest.mark.parametrize("value", [2**70, {1, 2j}, object(), {"t": (1, 2j)}])
def test_what_msgpack_cannot_encode_is_a_serialization_error(harness: Harness, value: Any) -> None:
    before = harness.run(harness.keyspace())
    with pytest.raises(SerializationError, match="use dicts, lists, str, bytes, int, float"):
        harness.run(harness.client.enqueue("call", value))
    assert harness.run(harness.keyspace()) == before
