"""msgpack with redisjobs' extension types: each type round-trips exactly, the byte layouts are
the documented ones, garbage is a clear error, and a worker takes and returns them all."""

from __future__ import annotations

import collections
import enum
import math
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple
from zoneinfo import ZoneInfo

import msgpack
import pytest

from redisjobs import Client, Job, JobStatus, SerializationError, serialization
from redisjobs.exttypes import MAX_NESTING
from redisjobs.serialization import packb, unpackb
from tests import jobs
from tests.conftest import WorkerFactory, log_events

NEW_YORK = ZoneInfo("America/New_York")
# 01:30 on 2021-11-07 happened twice in New York: fold=0 is EDT (05:30 UTC), fold=1 EST.
AMBIGUOUS = datetime(2021, 11, 7, 1, 30, tzinfo=NEW_YORK)


def same(a: Any, b: Any) -> bool:
    """Equal with types kept all the way down (a tuple is not a list, True is not 1), a
    datetime's zone and fold compared too, and a Decimal NaN equal to itself."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Decimal):
        return a.compare_total(b) == 0  # NaN, sNaN, -0 and the exponent all count
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, datetime):
        return (a, a.tzinfo, a.fold) == (b, b.tzinfo, b.fold)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def round_trip(value: Any) -> Any:
    return unpackb(packb(value))


DECIMALS = ["0", "-0", "0E-7", "1.000", "1E+3", "-1.5E-10", "NaN", "-NaN", "sNaN", "NaN123"]
DECIMALS += ["Infinity", "-Infinity", "-123456789012345678901234567890.123456789012345678901"]
ROUND_TRIPS: dict[str, Any] = {
    "naive datetime": datetime(2026, 12, 4, 13, 28, 56, 123456),
    "naive datetime, fold": datetime(2021, 11, 7, 1, 30, fold=1),
    "naive datetime before 1970": datetime(1969, 12, 31, 23, 59, 59, 999999),
    "naive min": datetime.min,
    "naive max": datetime.max,
    "utc datetime": datetime(2026, 12, 4, 13, 28, 56, 1, tzinfo=UTC),
    "utc min": datetime.min.replace(tzinfo=UTC),
    "utc max": datetime.max.replace(tzinfo=UTC),
    "date": date(2026, 12, 4),
    "date before 1970": date(1969, 12, 31),
    "date min": date.min,
    "date max": date.max,
    **{f"Decimal {text}": Decimal(text) for text in DECIMALS},
    "uuid4": uuid.UUID("8f2c6f8e-3b8a-4d0c-9a55-0d5e3b6a7c11"),
    "uuid nil": uuid.UUID(int=0),
    "uuid max": uuid.UUID(int=2**128 - 1),
    "empty tuple": (),
    "tuple": (1, "a", None, 2.5, b"\x00"),
    "nested tuple in dict in list": [{"t": (1, (2, "x"), [3, (4,)])}, ("a",)],
    "empty set": set(),
    "set": {1, 2, 3},
    "set of tuples": {(1, 2), (3, (4, 5))},
    "frozenset": frozenset({"a", frozenset({1})}),
    "empty frozenset": frozenset(),
    "bytes stay bytes": b"\x00\xff bytes",
    "str stays str": "é text",
    "lists stay lists": [1, [2, [3]]],
    "keys of the new types": {
        (1, 2): "tuple",
        frozenset({3}): "frozenset",
        date(2020, 1, 1): "date",
        uuid.UUID(int=7): "uuid",
        Decimal("1.10"): "decimal",
    },
    "all of them in a call payload": {
        "fn": "tests.jobs:echo",
        "args": [datetime(2020, 1, 1, tzinfo=UTC), date(2020, 1, 1), Decimal("9.99")],
        "kwargs": {"ids": {uuid.UUID(int=1), uuid.UUID(int=2)}, "size": (640, 480)},
    },
}


@pytest.mark.parametrize("value", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_each_type_round_trips_exactly(value: Any) -> None:
    got = round_trip(value)
    assert same(got, value), (got, value)
    if isinstance(value, set | frozenset):
        assert all(same(x, next(y for y in value if y == x)) for x in got)


def test_an_aware_datetime_comes_back_in_utc_at_the_same_instant() -> None:
    for fold in (0, 1):
        local = AMBIGUOUS.replace(fold=fold)
        got = round_trip(local)
        assert got.tzinfo is UTC and got.fold == 0
        assert got == local.astimezone(UTC) and got.timestamp() == local.timestamp()
    assert round_trip(AMBIGUOUS.replace(fold=1)) - round_trip(AMBIGUOUS) == timedelta(hours=1)
    offset = datetime(2026, 1, 1, 0, 0, 0, 7, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    assert same(round_trip(offset), datetime(2026, 1, 1, 3, 30, 0, 7, tzinfo=UTC))


def test_a_naive_datetime_stays_naive_with_its_fold() -> None:
    got = round_trip(datetime(2021, 11, 7, 1, 30, fold=1))
    assert got.tzinfo is None and got.fold == 1
    assert round_trip(datetime(2021, 11, 7, 1, 30)).fold == 0


class Color(enum.IntEnum):
    RED = 1


class Size(enum.StrEnum):
    LARGE = "large"


class Mixed(str, enum.Enum):  # noqa: UP042 (on purpose: its str() is "Mixed.ONE", not "one")
    ONE = "one"


class Flags(enum.IntFlag):
    A = 1
    B = 2


class MyFloat(float):
    pass


class MyList(list[int]):
    pass


class MyBytes(bytes):
    pass


SUBCLASSES: dict[str, Any] = {
    "IntEnum": Color.RED,
    "StrEnum": Size.LARGE,
    "str mixin Enum": Mixed.ONE,
    "IntFlag": Flags.A | Flags.B,
    "bool": True,
    "OrderedDict": collections.OrderedDict([("b", 1), ("a", Color.RED)]),
    "defaultdict": collections.defaultdict(list, {"k": MyList([1])}),
    "float subclass": MyFloat(1.5),
    "list subclass": MyList([1, 2]),
    "bytes subclass": MyBytes(b"ab"),
    "bytearray": bytearray(b"ab"),
    "memoryview": memoryview(b"ab"),
}


@pytest.mark.parametrize("value", SUBCLASSES.values(), ids=SUBCLASSES.keys())
def test_subclasses_of_native_types_encode_as_before(value: Any) -> None:
    # Strict types hand subclasses over to the extension hook; they must come out as msgpack
    # wrote them without strict types, byte for byte.
    assert packb(value) == msgpack.packb(value, use_bin_type=True, datetime=False)


class Point(NamedTuple):
    x: int
    y: int


def test_a_namedtuple_and_subclasses_of_the_new_types_come_back_as_the_type() -> None:
    assert same(round_trip(Point(1, 2)), (1, 2))

    class Stamp(datetime):
        pass

    class Tags(set[str]):
        pass

    assert same(round_trip(Stamp(2020, 1, 1)), datetime(2020, 1, 1))
    assert same(round_trip(Tags({"a"})), {"a"})


def ext(code: int, data: bytes) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, data))  # type: ignore[no-any-return]


# Written by hand from the table in docs/wire-format.md, as another language would write them.
LAYOUTS: dict[str, tuple[bytes, Any]] = {
    "aware datetime": (
        ext(64, b"\x01" + (1_000_001).to_bytes(8, "big", signed=True)),
        datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC),
    ),
    "naive datetime": (
        ext(64, b"\x00" + (-1).to_bytes(8, "big", signed=True)),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
    ),
    "naive datetime, fold": (
        ext(64, b"\x02" + (0).to_bytes(8, "big", signed=True)),
        datetime(1970, 1, 1, fold=1),
    ),
    "date": (ext(65, (-1).to_bytes(4, "big", signed=True)), date(1969, 12, 31)),
    "Decimal": (ext(66, b"-1.50E+3"), Decimal("-1.50E+3")),
    "UUID": (ext(67, bytes(range(16))), uuid.UUID(bytes=bytes(range(16)))),
    "tuple": (ext(68, msgpack.packb([1, "a"])), (1, "a")),
    "set": (ext(69, msgpack.packb([1, 2])), {1, 2}),
    "frozenset": (ext(70, msgpack.packb([])), frozenset()),
}


@pytest.mark.parametrize(("wire", "value"), LAYOUTS.values(), ids=LAYOUTS.keys())
def test_the_documented_layouts(wire: bytes, value: Any) -> None:
    assert same(unpackb(wire), value)
    if not isinstance(value, set):  # (a set's items come in whatever order it iterates)
        assert packb(value) == wire


def test_msgpack_timestamps_are_neither_written_nor_changed() -> None:
    # datetime=False: an aware datetime is written under our code, not as msgpack's ext -1.
    written = packb(datetime(2020, 1, 1, tzinfo=UTC))
    assert msgpack.unpackb(written) == msgpack.ExtType(64, written[3:])
    # An ext -1 from another producer reads as msgpack reads it.
    stamp = msgpack.Timestamp(1_600_000_000, 5)
    assert unpackb(msgpack.packb(stamp, datetime=False)) == stamp


def test_unknown_ext_codes_read_as_ext_types() -> None:
    for code in (0, 12, 63, 71, 127):
        assert unpackb(ext(code, b"\x01\x02")) == msgpack.ExtType(code, b"\x01\x02")
    assert unpackb(msgpack.packb({"a": [msgpack.ExtType(5, b"")]})) == {
        "a": [msgpack.ExtType(5, b"")]
    }
    assert unpackb(ext(68, msgpack.packb([msgpack.ExtType(5, b"x")]))) == (
        msgpack.ExtType(5, b"x"),
    )


GARBAGE: dict[str, tuple[bytes, str]] = {
    "datetime too short": (ext(64, b"\x01\x00"), "ext 64 (datetime) is malformed"),
    "datetime flags": (ext(64, b"\x07" + bytes(8)), "flags 0x07 are not"),
    "datetime aware and fold": (ext(64, b"\x03" + bytes(8)), "flags 0x03 are not"),
    "datetime out of range": (ext(64, b"\x01" + b"\x7f" * 8), "outside the years 1-9999"),
    "date out of range": (
        ext(65, b"\x7f\xff\xff\xff"),
        "ext 65 (date) is malformed: 2147483647 days",
    ),
    "date too long": (ext(65, bytes(5)), "ext 65 (date) is malformed"),
    "Decimal text": (ext(66, b"twelve"), "'twelve' is not a decimal"),
    "Decimal spaces": (ext(66, b" 1 "), "' 1 ' is not a decimal"),
    "Decimal not ascii": (ext(66, "١٢".encode()), "ext 66 (Decimal) is malformed"),
    "Decimal empty": (ext(66, b""), "'' is not a decimal"),
    "UUID short": (ext(67, bytes(15)), "ext 67 (UUID) is malformed"),
    "tuple of a map": (ext(68, msgpack.packb({"a": 1})), "not a msgpack array"),
    "tuple not msgpack": (ext(68, b"\xc1"), "ext 68 (tuple) is malformed"),
    "tuple cut short": (ext(68, b"\x93\x01"), "ext 68 (tuple) is malformed"),
    "tuple with a tail": (ext(68, b"\x91\x01\x02"), "1 bytes left after the array"),
    "set of lists": (ext(69, msgpack.packb([[1]])), "unhashable"),
    "garbage inside a tuple": (ext(68, b"\x91" + ext(66, b"x")), "ext 66 (Decimal)"),
}


@pytest.mark.parametrize(("wire", "message"), GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_under_our_codes_is_a_serialization_error(wire: bytes, message: str) -> None:
    with pytest.raises(SerializationError) as caught:
        unpackb(wire)
    assert str(caught.value).startswith(f"cannot decode msgpack ({len(wire)} bytes): ")
    assert message in str(caught.value)


def test_a_job_hash_with_garbage_under_our_codes_reports_it_as_the_jobs_error() -> None:
    h = {b"status": b"completed", b"payload": ext(66, b"x"), b"result": packb((1, {2}))}
    job = Job.from_hash("q", "j", h)
    assert job.payload is None and job.result == (1, {2}) and job.status is JobStatus.COMPLETED
    assert job.error is not None and "ext 66 (Decimal) is malformed" in job.error


def nested(depth: int) -> Any:
    value: Any = ()
    for _ in range(depth - 1):
        value = (value,)
    return value


def test_tuples_and_sets_nest_up_to_the_limit_on_both_sides() -> None:
    deepest = nested(MAX_NESTING)
    assert same(round_trip([{"deep": deepest}]), [{"deep": deepest}])
    with pytest.raises(SerializationError, match=f"nested more than {MAX_NESTING} deep"):
        packb(nested(MAX_NESTING + 1))
    # Written by another producer: refused as well, however deep, without exhausting a stack.
    wire = msgpack.packb([])
    for _ in range(10_000):
        wire = ext(68, b"\x91" + wire)
    with pytest.raises(SerializationError, match=f"nested more than {MAX_NESTING} deep"):
        unpackb(wire)
    loop: list[Any] = []
    loop.append((loop,))
    with pytest.raises(SerializationError, match="deep"):
        packb(loop)


def test_deep_nesting_fits_a_small_thread_stack() -> None:
    # Each nested tuple decodes with an Unpacker (its parse stack on the heap): 32 levels fit
    # in a 256 KiB thread stack, where 32 unpackb calls (40 KiB of C stack each) would crash.
    deepest, got = nested(MAX_NESTING), []
    wire = packb(deepest)
    size = threading.stack_size(256 * 1024)
    try:
        thread = threading.Thread(target=lambda: got.append(unpackb(wire) == deepest))
        thread.start()
        thread.join()
    finally:
        threading.stack_size(size)
    assert got == [True]


@pytest.mark.parametrize(
    "value",
    [object(), {"t": (1, 2j)}, {1j}, 2**64, [datetime.max.replace(tzinfo=NEW_YORK)]],
    ids=["object", "complex in a tuple", "complex in a set", "int past 64 bits", "past UTC"],
)
def test_what_cannot_be_encoded_is_a_serialization_error(value: Any) -> None:
    with pytest.raises(SerializationError, match=r"^cannot encode .* as msgpack: .*; use dicts"):
        packb(value)


def test_a_failed_pack_leaves_the_next_one_clean() -> None:
    with pytest.raises(SerializationError):
        packb({"a": [1, 2, (3, object())]})
    assert packb({"b": (1,)}) == msgpack.packb({"b": msgpack.ExtType(68, b"\x91\x01")})


class Reentrant(list[Any]):
    """A list whose iteration packs something else: a pack nested inside another one."""

    inner: ClassVar[list[bytes]] = []

    def __iter__(self) -> Iterator[Any]:
        self.inner.append(packb({"inner": (1, 2)}))
        return super().__iter__()


def test_packers_are_never_shared_by_two_packs_at_once() -> None:
    assert packb(Reentrant(["outer"])) == msgpack.packb(["outer"])
    assert Reentrant.inner == [msgpack.packb({"inner": msgpack.ExtType(68, b"\x92\x01\x02")})]

    values = [{"n": n, "t": (n, str(n) * n)} for n in range(200)]
    expected = [packb(v) for v in values]
    results: list[bool] = []

    def pack_all() -> None:
        results.append(
            all(packb(v) == e for _ in range(20) for v, e in zip(values, expected, strict=True))
        )

    threads = [threading.Thread(target=pack_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 8


def test_a_large_value_does_not_keep_its_packer() -> None:
    packb(1)  # at least one packer in the pool
    pooled = list(serialization._POOL)
    packb(b"x" * 200_000)
    assert pooled[:-1] == serialization._POOL  # the packer it took grew: let go, not pooled
    packb(b"x" * 1000)
    assert len(serialization._POOL) == max(len(pooled) - 1, 1)  # a small one goes back


async def test_a_worker_takes_and_returns_every_type(client: Client, worker: WorkerFactory) -> None:
    values = list(ROUND_TRIPS.values())
    await worker(functions=[jobs.echo, jobs.types_of])
    job = await client.enqueue("call", {"fn": "echo", "args": [values]})
    result = await client.wait(job.id, timeout=10)
    assert same(result, values)
    got = await client.get(job.id)
    assert got is not None and same(got.payload["args"], [values]) and same(got.result, values)
    [completed] = [e for e in await log_events(client, job.id) if e.type == "completed"]
    assert same(completed.data["result"], values)  # spliced into the event by Lua, as bytes

    typed = await client.enqueue("call", {"fn": "types_of", "args": values})
    names = await client.wait(typed.id, timeout=10)
    assert names == [type(v).__name__ for v in values]  # as the function saw them
