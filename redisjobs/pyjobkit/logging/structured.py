"""JSON log lines in Pyjobkit's shape: ``{"ts", "level", "logger", "msg", "event", "job_id",
"worker_id", "status", "duration_ms", ...}``, the fields given by ``extra=`` merged in."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

_FIRST = ("ts", "level", "logger", "msg", "event", "job_id", "worker_id", "status", "duration_ms")
"""Keys that lead each line, in this order, so that lines grep well."""

# the attributes every LogRecord has: not extras
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_MARK = "_pyjobkit_handler"
"""Marks the handlers :func:`configure_logging` installed (so a second call replaces them)."""


def _plain(value: Any) -> Any:
    """`value` as JSON takes it: containers walked, anything else by its repr."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON, its ``extra=`` fields included.

    Args:
        ensure_ascii: escape non-ASCII characters.
    """

    def __init__(self, *, ensure_ascii: bool = False) -> None:
        super().__init__()
        self._ensure_ascii = ensure_ascii

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        fields: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                fields.setdefault(key, _plain(value))
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack_info"] = self.formatStack(record.stack_info)
        ordered = {key: fields.pop(key) for key in _FIRST if key in fields} | fields
        return json.dumps(ordered, ensure_ascii=self._ensure_ascii, default=str)


def configure_logging(level: str | int = "INFO", *, fmt: str = "text") -> None:
    """Log to stderr from the root logger at `level`, as text or (`fmt` ``"json"``) JSON.

    Calling it again replaces the handler it installed and leaves every other handler alone.

    Raises:
        ValueError: an unknown format or level name.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"unsupported log format: {fmt!r} (expected 'text' or 'json')")
    if isinstance(level, str):
        number = logging.getLevelNamesMapping().get(level.upper())
        if number is None:
            raise ValueError(f"unknown log level: {level!r}")
        level = number
    handler = logging.StreamHandler()
    handler.set_name("pyjobkit")
    setattr(handler, _MARK, True)
    text = logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    handler.setFormatter(JsonFormatter() if fmt == "json" else text)
    root = logging.getLogger()
    for installed in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(installed)
    root.addHandler(handler)
    root.setLevel(level)
