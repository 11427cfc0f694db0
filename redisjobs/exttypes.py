"""msgpack extension types: the Python values payloads and results carry beyond msgpack's own.

msgpack has maps, arrays, strings, bytes, numbers, booleans and nil; people also pass times,
dates, decimals, UUIDs, tuples and sets. Each of those travels as a msgpack *ext* value under one
of redisjobs' codes (64-79 are kept for them), and comes back as the same type with the same
value (docs/wire-format.md, "Extension types", lays each one out byte by byte for producers in
other languages):

====  ==============  =====================================================================
code  Python type     ext data
====  ==============  =====================================================================
64    ``datetime``    flags (1 byte) + int64 big-endian microseconds since 1970-01-01T00:00
65    ``date``        int32 big-endian days since 1970-01-01
66    ``Decimal``     ``str(value)`` in ASCII: sign, digits, exponent, NaN and Infinity exact
67    ``UUID``        the 16 bytes
68    ``tuple``       a msgpack array of the items
69    ``set``         a msgpack array of the items
70    ``frozenset``   a msgpack array of the items
====  ==============  =====================================================================

An aware datetime is written as its instant in UTC and comes back aware, in UTC. A naive one
is a wall-clock reading with no zone: it is written as read (flag bit 0 clear), comes back naive
with the same fields, ``fold`` included (bit 1). msgpack's own Timestamp (ext -1) is not used:
it holds an instant only, so a naive datetime has no faithful form in it, and msgpack writes it
only when asked (``datetime=True``, which also refuses naive datetimes). The packer keeps
``datetime=False`` so every datetime reaches this module. An ext -1 written by another producer
still reads as msgpack reads it (a ``msgpack.Timestamp``), and an ext of a code this module does
not know reads as a ``msgpack.ExtType``: another producer's types never break a read.

Encoding uses msgpack's ``strict_types``, so that a tuple is not silently written as an array.
Strict types also hand subclasses of msgpack's native types to :func:`encode` (IntEnum, StrEnum,
OrderedDict, defaultdict...): those are written as their base type, byte for byte as without
strict types. A namedtuple is a tuple (code 68) and comes back a plain tuple.

Tuples and sets hold their items as a msgpack document of their own, decoded by a call nested in
the outer one; so that hostile data cannot nest such calls without end, they nest at most
:data:`MAX_NESTING` deep in one another, on both sides.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgpack
from msgpack import ExtType

from .errors import SerializationError

DATETIME, DATE, DECIMAL, UUID_CODE, TUPLE, SET, FROZENSET = range(64, 71)
MAX_NESTING = 32
"""Tuples and sets inside tuples and sets, at most this deep (lists and maps do not count)."""

_AWARE, _FOLD = 0x01, 0x02
_DATETIME = struct.Struct(">Bq")
_DATE = struct.Struct(">i")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_LAST_DAY = date.max.toordinal()
_MICROSECOND = timedelta(microseconds=1)
# What str(Decimal) writes; Decimal() itself would also take spaces, "_" and non-ASCII digits.
_DECIMAL_TEXT = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?|inf(?:inity)?|s?nan\d*)",
    re.ASCII | re.IGNORECASE,
)
PACKER_OPTIONS: dict[str, Any] = {"use_bin_type": True, "datetime": False, "strict_types": True}
"""How every value is packed (with ``default=encode``)."""


def _pack_datetime(value: datetime) -> bytes:
    if value.utcoffset() is None:  # naive, by Python's definition
        if value.tzinfo is not None:  # a zone that gives no offset (replace() is slow)
            value = value.replace(tzinfo=None)
        micros = (value - _NAIVE_EPOCH) // _MICROSECOND
        return _DATETIME.pack(_FOLD if value.fold else 0, micros)
    # astimezone raises OverflowError for an instant outside the years UTC can hold, which
    # the decoder could not return.
    return _DATETIME.pack(_AWARE, (value.astimezone(UTC) - _EPOCH) // _MICROSECOND)


def _unpack_datetime(data: bytes) -> datetime:
    flags, micros = _DATETIME.unpack(data)
    if flags not in (0, _AWARE, _FOLD):
        raise ValueError(f"flags {flags:#04x} are not 0x00, 0x01 or 0x02")
    try:
        value: datetime = (_EPOCH if flags & _AWARE else _NAIVE_EPOCH) + micros * _MICROSECOND
    except OverflowError:
        raise ValueError(
            f"{micros} microseconds from 1970-01-01 is outside the years 1-9999"
        ) from None
    return value.replace(fold=1) if flags & _FOLD else value


def _unpack_date(data: bytes) -> date:
    (days,) = _DATE.unpack(data)
    if not 1 <= days + _EPOCH_DAY <= _LAST_DAY:
        raise ValueError(f"{days} days from 1970-01-01 is outside the years 1-9999")
    return date.fromordinal(days + _EPOCH_DAY)


def _unpack_decimal(data: bytes) -> Decimal:
    text = data.decode("ascii")
    if not _DECIMAL_TEXT.fullmatch(text):
        raise ValueError(f"{text!r} is not a decimal as str(Decimal) writes one")
    return Decimal(text)


def _nest(depth: int) -> int:
    """The depth of the items of a tuple or set at `depth`; raises past MAX_NESTING."""
    if depth >= MAX_NESTING:
        raise ValueError(f"tuples and sets nested more than {MAX_NESTING} deep")
    return depth + 1


def _pack_items(items: Any, depth: int) -> bytes:
    hook = functools.partial(encode, depth=_nest(depth))
    # A small first buffer: msgpack's default (256 KiB) is made for whole documents.
    packed = msgpack.packb(list(items), default=hook, buf_size=1024, **PACKER_OPTIONS)
    return packed  # type: ignore[no-any-return]


def _unpack_items(data: bytes, depth: int) -> list[Any]:
    # An Unpacker, not unpackb: unpackb keeps its 40 KiB parse stack on the C stack, and each
    # nested tuple or set would add one; an Unpacker keeps it on the heap.
    hook = functools.partial(decode, depth=_nest(depth))
    unpacker = msgpack.Unpacker(
        raw=False, strict_map_key=False, ext_hook=hook, max_buffer_size=max(len(data), 1)
    )
    unpacker.feed(data)
    items = unpacker.unpack()
    if unpacker.tell() != len(data):
        raise ValueError(f"{len(data) - unpacker.tell()} bytes left after the array")
    if not isinstance(items, list):
        raise ValueError(f"its data is not a msgpack array (it reads as {type(items).__name__})")
    return items


_TYPES: dict[int, type] = {
    DATETIME: datetime,  # before date, of which it is a subclass
    DATE: date,
    DECIMAL: Decimal,
    UUID_CODE: UUID,
    TUPLE: tuple,
    SET: set,
    FROZENSET: frozenset,
}
_CODES = {kind: code for code, kind in _TYPES.items()}
# ExtType is a namedtuple whose __new__ checks its arguments in Python, which costs more than
# the rest of writing a UUID; the codes and data here need no check.
_ext: Callable[[tuple[int, bytes]], ExtType] = functools.partial(tuple.__new__, ExtType)
_CONTAINERS = frozenset({TUPLE, SET, FROZENSET})
_PACK: dict[int, Callable[[Any], bytes]] = {
    DATETIME: _pack_datetime,
    DATE: lambda value: _DATE.pack(value.toordinal() - _EPOCH_DAY),
    DECIMAL: lambda value: str(value).encode("ascii"),
    UUID_CODE: lambda value: value.bytes,
}
_UNPACK: dict[int, Callable[[bytes], Any]] = {
    DATETIME: _unpack_datetime,
    DATE: _unpack_date,
    DECIMAL: _unpack_decimal,
    UUID_CODE: lambda data: UUID(bytes=data),
}
# Subclasses of msgpack's native types, which strict types hand over: written as their base
# type, as msgpack writes them without strict types. The base's own method, not int() or str(),
# so that an enum's __str__ ("Color.RED") or a subclass's __int__ cannot change the value.
_NATIVE: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (int, int.__int__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, bytes.__bytes__),
    (dict, dict),
    (list, list),
)


def encode(value: Any, depth: int = 0) -> Any:
    """The packer's ``default``: `value` as an ext of this module, or as its native base type.

    Args:
        value: what msgpack could not pack itself.
        depth: how many tuples and sets hold `value` (the hook of their items passes it).

    Raises:
        TypeError: not a type msgpack or this module writes (say, an object).
        ValueError: tuples and sets nested deeper than :data:`MAX_NESTING`.
        OverflowError: an aware datetime whose instant is outside the years UTC can hold.
    """
    code = _CODES.get(type(value))
    if code is None:  # a subclass (a namedtuple, a datetime subclass...), or no type of ours
        code = next((c for kind, c in _CODES.items() if isinstance(value, kind)), None)
    if code is None:
        return _native(value)
    data = _pack_items(value, depth) if code in _CONTAINERS else _PACK[code](value)
    return _ext((code, data))


def _native(value: Any) -> Any:
    for native, convert in _NATIVE:
        if isinstance(value, native):
            return convert(value)
    raise TypeError(f"cannot serialize {type(value).__name__!r} object")


def decode(code: int, data: bytes, depth: int = 0) -> Any:
    """The unpacker's ``ext_hook``: the value of an ext of this module, else the ExtType.

    Args:
        code: the ext's type code.
        data: its bytes.
        depth: how many tuples and sets hold it (the hook of their items passes it).

    Raises:
        SerializationError: the data under one of this module's codes is malformed.
    """
    kind = _TYPES.get(code)
    if kind is None:
        return ExtType(code, data)
    try:
        if code in _CONTAINERS:
            return kind(_unpack_items(data, depth))
        return _UNPACK[code](data)
    except SerializationError:  # from an ext nested in this one: it names itself
        raise
    except Exception as exc:  # struct.error, ValueError, OverflowError, unhashable items...
        why = str(exc) or type(exc).__name__  # msgpack's OutOfData says nothing
        raise SerializationError(f"ext {code} ({kind.__name__}) is malformed: {why}") from exc
