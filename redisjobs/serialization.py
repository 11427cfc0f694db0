"""Typed msgpack for payloads, results and events; nothing is ever pickled.

Encoding errors surface here, at ``enqueue`` time, before anything is written to Redis.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from .errors import PayloadTooLarge, SerializationError

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024

_packer_options: dict[str, Any] = {"use_bin_type": True, "datetime": False}


def packb(value: Any) -> bytes:
    """Encode `value` as msgpack.

    Raises:
        SerializationError: the value holds something msgpack cannot encode (say, an object).
    """
    try:
        return msgpack.packb(value, **_packer_options)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(
            f"cannot encode {type(value).__name__} as msgpack: {exc}; use dicts, lists, str, "
            "bytes, int, float, bool and None"
        ) from exc


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
        SerializationError: the bytes are not valid msgpack.
    """
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise SerializationError(f"cannot decode msgpack ({len(data)} bytes): {exc}") from exc


def pack_float(value: float) -> bytes:
    """One msgpack float64, ready to splice into an event that Lua assembles."""
    return b"\xcb" + struct.pack(">d", value)
