"""What the built-in executors share: reading payload fields, host allow-lists, env checks.

A payload comes from Redis and is trusted with nothing: every field is checked here and a bad
one raises :class:`~redisjobs.errors.PayloadError`, which fails that one job for good.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import PayloadError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def fields(payload: Any, kind: str, example: str) -> Mapping[str, Any]:
    """`payload` as a mapping, or a PayloadError that shows the expected shape."""
    if not isinstance(payload, Mapping):
        raise PayloadError(
            f"a {kind} payload is a map like {example}, not {type(payload).__name__}"
        )
    return payload


def opt_str(p: Mapping[str, Any], key: str) -> str | None:
    """Optional string field."""
    value = p.get(key)
    if value is not None and not isinstance(value, str):
        raise PayloadError(f"payload field {key!r} must be a string")
    return value


def opt_seconds(p: Mapping[str, Any], key: str, default: float | None) -> float | None:
    """Optional positive number of seconds; `default` when absent."""
    value = p.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise PayloadError(f"payload field {key!r} must be a positive number of seconds")
    return float(value)


def opt_int(p: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """Optional integer field."""
    value = p.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"payload field {key!r} must be an integer")
    return value


def str_map(p: Mapping[str, Any], key: str) -> dict[str, str]:
    """Optional map of strings (numbers are accepted and written as text)."""
    value = p.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError(f"payload field {key!r} must be a map of strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, str | int | float):
            raise PayloadError(f"payload field {key!r} must be a map of strings")
        out[k] = str(v)
    return out


def env_map(p: Mapping[str, Any], key: str = "env") -> dict[str, str]:
    """Optional environment: names a shell accepts, values without NUL."""
    env = str_map(p, key)
    for name, value in env.items():
        if not _ENV_NAME.match(name) or "\0" in value:
            raise PayloadError(f"bad environment variable {name!r} in payload field {key!r}")
    return env


def command(p: Mapping[str, Any]) -> tuple[list[str] | None, str | None]:
    """(argv, cmd): exactly one of a non-empty list of strings or a command string.

    A list given as ``cmd`` is an argv (the payload Pyjobkit's subprocess executor takes).
    """
    argv, cmd = p.get("argv"), p.get("cmd")
    if isinstance(cmd, list | tuple) and argv is None:
        argv, cmd = cmd, None
    if (argv is None) == (cmd is None):
        raise PayloadError('the payload needs exactly one of "argv" (a list) or "cmd" (a string)')
    if argv is not None:
        if (
            not isinstance(argv, list | tuple)
            or not argv
            or not all(isinstance(a, str) and "\0" not in a for a in argv)
        ):
            raise PayloadError('"argv" must be a non-empty list of strings')
        return list(argv), None
    if not isinstance(cmd, str) or not cmd.strip():
        raise PayloadError('"cmd" must be a non-empty string')
    return None, cmd


class HostAllowList:
    """Host names a worker lets its jobs reach.

    An entry is an exact host name or IP (``api.example.com``, ``10.0.0.5``) or a wildcard
    for the subdomains of a name (``*.example.com``, which does not match ``example.com``).
    No entries at all means every host is allowed.
    """

    def __init__(self, hosts: Iterable[str] | None) -> None:
        self._exact: set[str] = set()
        self._suffixes: list[str] = []
        for host in hosts or ():
            host = host.strip().lower().rstrip(".")
            if host.startswith("*."):
                self._suffixes.append(host[1:])
            elif host:
                self._exact.add(host)
        self.restricted = bool(self._exact or self._suffixes)

    def allows(self, host: str) -> bool:
        """True when `host` may be reached."""
        if not self.restricted:
            return True
        host = host.lower().rstrip(".")
        return host in self._exact or any(host.endswith(s) for s in self._suffixes)

    def check(self, host: str) -> None:
        """Raise PayloadError unless `host` may be reached."""
        if not self.allows(host):
            raise PayloadError(f"host {host!r} is not in this worker's allow-list")
