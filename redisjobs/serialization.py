"""Typed msgpack for payloads, results and events; nothing is ever pickled.

Besides msgpack's own types, datetimes, dates, Decimals, UUIDs, tuples and sets travel as the
extension types of :mod:`.exttypes`. Encoding errors surface here, at ``enqueue`` time, before
anything is written to Redis.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from . import exttypes
from .errors import PayloadTooLarge, SerializationError

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024

# Packers are reused: making one costs more than packing a typical payload. A packer is taken
# out of the pool while it packs, so no two threads, and no pack nested in another, ever share
# one (list.pop and list.append are atomic). One whose buffer grew for a large value is let go
# rather than pooled, so that a pool keeps a few small buffers, not the largest value's.
_POOL: list[msgpack.Packer] = []
_BUFFER_BYTES = 16 * 1024
_POOL_MAX_BYTES = 64 * 1024
_HINT = (
    "use dicts, lists, str, bytes, int, float, bool, None, tuples, sets, frozensets, "
    "datetime, date, Decimal and UUID"
)


def packb(value: Any) -> bytes:
    """Encode `value` as msgpack, with the extension types of :mod:`.exttypes`.

    Raises:
        SerializationError: the value holds something neither msgpack nor :mod:`.exttypes`
            encodes (say, an object), or an integer beyond 64 bits.
    """
    try:
        packer = _POOL.pop()
    except IndexError:
        packer = msgpack.Packer(
            default=exttypes.encode, buf_size=_BUFFER_BYTES, **exttypes.PACKER_OPTIONS
        )
    try:
        data: bytes = packer.pack(value)
    except (TypeError, ValueError, OverflowError) as exc:
        _POOL.append(packer)  # a failed pack leaves its packer empty
        raise SerializationError(
            f"cannot encode {type(value).__name__} as msgpack: {exc}; {_HINT}"
        ) from exc
    if len(data) <= _POOL_MAX_BYTES:
        _POOL.append(packer)
    return data


def pack_payload(value: Any, max_bytes: int) -> bytes:
    """Encode a job payload and enforce the size cap.

    Raises:
        SerializationError: the payload is not msgpack-encodable.
        PayloadTooLarge: the encoded payload is over `max_bytes`.
    """
    data = packb(value)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"payload is {len(data)} bytes encoded, over the {max_bytes} cap")
    return data


def unpackb(data: bytes) -> Any:
    """Decode msgpack bytes.

    Raises:
        SerializationError: the bytes are not valid msgpack, or hold a malformed extension value
            of :mod:`.exttypes` (an ext code it does not know decodes as a msgpack.ExtType).
    """
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=exttypes.decode)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise SerializationError(f"cannot decode msgpack ({len(data)} bytes): {exc}") from exc


def pack_float(value: float) -> bytes:
    """One msgpack float64, ready to splice into an event that Lua assembles."""
    return b"\xcb" + struct.pack(">d", value)
