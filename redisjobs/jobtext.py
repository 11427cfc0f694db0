"""A job's name and its call as a person reads it: ``myapp.tasks:resize('a.png', width=640)``.

Every view an operator looks at (the CLI, the dashboard, the HTTP API) names a job by what it
runs rather than by its kind: a ``call`` job by the function its payload names, any other by
its kind. The text of the call shows the arguments as Python would (``repr``), cut to a length:
long strings and long containers are elided with ``…``, nesting deeper than a few levels is
shown as ``[...]``, and arguments past the length become one ``…``. For the other kinds the
text is the kind and a hint of where the job goes: ``http POST api.example.com/hooks`` (no
credentials, no query string), ``subprocess pg_dump``, ``ssh build-1 make``.

Payloads are whatever a producer wrote, so nothing here raises on them: a value of a shape no
worker would run is still shown, as the closest reading of it.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

SHORT = 80
"""Characters of a call in lists."""
LONG = 4000
"""Characters of a call on a job's own page."""
NAME_CHARS = 200
"""Characters of a name at most (a registered function name is never longer)."""
CALL = "call"


def job_name(kind: str, payload: Any) -> str:
    """What a job is called: a ``call`` job's function name (its payload's ``fn``), else its
    kind. A name that is not one printable string is shown as its ``repr``, cut short."""
    fn = payload.get("fn") if kind == CALL and isinstance(payload, Mapping) else None
    if not isinstance(fn, str) or not fn:
        return kind
    if not fn.isprintable():  # a control character would reach the terminal as is
        fn = repr(fn[:NAME_CHARS])
    return fn if len(fn) <= NAME_CHARS else fn[: NAME_CHARS - 1] + "…"


class _Repr(reprlib.Repr):
    """``repr`` with every value's size bounded, map keys in their own order (reprlib sorts)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel = 3 if limit <= SHORT else 6
        self.maxstring = self.maxother = self.maxlong = max(12, limit // 2)
        items = max(3, limit // 12)
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = items

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        """A map's first entries in the order they came."""
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        shown = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in _head(x)]
        more = ", ..." if len(x) > self.maxdict else ""
        return "{" + ", ".join(shown[: self.maxdict]) + more + "}"

    def repr_bytes(self, x: bytes, level: int) -> str:
        """Bytes cut before they are shown (reprlib would show them whole)."""
        shown = repr(x[: self.maxstring])
        return shown if len(x) <= self.maxstring else shown + "..."


def _head(x: Mapping[Any, Any], n: int = 64) -> list[tuple[Any, Any]]:
    """The first `n` entries of a map (a map of a million keys is not walked)."""
    out: list[tuple[Any, Any]] = []
    for item in x.items():
        if len(out) >= n:
            break
        out.append(item)
    return out


def short_repr(value: Any, limit: int = SHORT) -> str:
    """``repr(value)`` in at most about `limit` characters (long parts elided), never raising."""
    try:
        text = _Repr(limit).repr(value)
    except Exception:  # a value reprlib cannot size (msgpack only decodes plain values)
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _positional(args: Any, limit: int) -> list[str]:
    if isinstance(args, list | tuple):
        return [short_repr(a, limit) for a in args[: limit // 2]]
    if args is None or isinstance(args, Mapping):
        return []
    return ["*" + short_repr(args, limit)]  # no shape a worker takes: shown as it is


def _keyword(kwargs: Any, args: Any, limit: int) -> list[str]:
    named: dict[Any, Any] = {}
    for given in (kwargs, args):  # a map in "args" wins over "kwargs", as a worker binds them
        if isinstance(given, Mapping):
            named.update(_head(given, limit // 2))
    parts = [] if kwargs is None or isinstance(kwargs, Mapping) else ["**" + short_repr(kwargs)]
    for key, value in named.items():
        if isinstance(key, str) and key.isidentifier():
            parts.append(f"{key}={short_repr(value, limit)}")
        else:  # a name no keyword argument can have: as Python would have to pass it
            parts.append(f"**{{{short_repr(key, limit)}: {short_repr(value, limit)}}}")
    return parts


def _arguments(payload: Mapping[Any, Any], limit: int) -> list[str]:
    """The payload's arguments as they would be written in the call, each cut to `limit`."""
    args, kwargs = payload.get("args"), payload.get("kwargs")
    return _positional(args, limit) + _keyword(kwargs, args, limit)


def _fit(head: str, parts: list[str], limit: int) -> str:
    """``head(part, part, …)`` in `limit` characters: whole parts while they fit (with room
    left to close the call), then the start of the next one if enough of it shows, then ``…``."""
    out = head + "("
    for i, part in enumerate(parts):
        sep = ", " if i else ""
        tail = ")" if i == len(parts) - 1 else ", …)"
        room = limit - len(out) - len(sep) - len(tail)
        if len(part) <= room:
            out += sep + part
            continue
        if room >= 8:  # enough of this argument to recognise it
            return out + sep + clip(part, room) + tail
        return out + (", …)" if i else "…)")
    return out + ")"


def _hint(kind: str, payload: Mapping[Any, Any]) -> str:
    """Where a job of a built-in kind goes, without credentials or query strings."""
    if kind == "http":
        url = payload.get("url")
        method = payload.get("method", "POST")
        parts = urlsplit(url) if isinstance(url, str) else None
        where = f"{parts.hostname or ''}{parts.path}" if parts else ""
        return f"{method if isinstance(method, str) else '?'} {where}".strip()
    program = payload.get("argv", payload.get("cmd"))
    if isinstance(program, list | tuple) and program:
        program = program[0]
    first = program.split(maxsplit=1)[0] if isinstance(program, str) and program.split() else ""
    host = payload.get("host") if kind == "ssh" else None
    return " ".join(p for p in (host, first) if isinstance(p, str) and p)


def call_text(kind: str, payload: Any, limit: int = SHORT) -> str:
    """A job's call in at most `limit` characters: ``fn(arg, name=value)`` for a ``call`` job,
    its kind and a hint of where it goes for another (see the module docstring)."""
    try:
        name = job_name(kind, payload)
        if not isinstance(payload, Mapping):
            return clip(name, limit)
        if kind == CALL:
            return _fit(clip(name, max(limit // 2, 8)), _arguments(payload, limit), limit)
        hint = _hint(kind, payload) if kind in ("http", "subprocess", "ssh") else ""
        hint = hint if hint.isprintable() else repr(hint)
        return clip(f"{name} {hint}".strip(), limit)
    except Exception:  # hostile payloads never break a listing; the kind always shows
        return clip(kind, limit)
