"""Output for people and for scripts: aligned tables, JSON, and short forms of values."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Container, Sequence
from datetime import UTC, datetime
from typing import Any

from ..job import Job
from ..jsonable import jsonable

EXCERPT_CHARS = 40
CALL_CHARS = 48
"""Characters of a job's call (its name and arguments) in a listing."""
_GAP = "  "


def table(
    rows: Sequence[Sequence[object]], headers: Sequence[str] = (), right: Container[int] = ()
) -> str:
    """`rows` as columns aligned on their widest cell, under optional `headers`.

    Args:
        rows: one sequence of cells per line; each cell is shown as ``str(cell)``.
        headers: column titles (none: no title line).
        right: indexes of the columns aligned right (numbers).
    """
    lines = [[str(cell) for cell in row] for row in ([headers] if headers else []) + list(rows)]
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        _GAP.join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def to_json(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON, converted as the HTTP API converts it (:mod:`redisjobs.jsonable`)."""
    return json.dumps(jsonable(value), ensure_ascii=False, indent=indent)


def print_json(document: Any) -> None:
    """Print one JSON document (the whole output of a ``--json`` command)."""
    print(to_json(document, indent=2))


def print_json_line(document: Any) -> None:
    """Print one JSON object on one line, at once (streams read line by line)."""
    print(to_json(document), flush=True)


def job_document(job: Job) -> dict[str, Any]:
    """Every field of `job`, and its name (:attr:`Job.name`), for JSON."""
    fields = dataclasses.asdict(job)
    return {"id": fields.pop("id"), "name": job.name, **fields}


def when(moment: datetime | None) -> str:
    """A timestamp in local time, to the second ('-' for none)."""
    return "-" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def clock(ts_ms: int) -> str:
    """A Redis millisecond timestamp as local wall-clock time with milliseconds."""
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone()
    return moment.strftime("%H:%M:%S.") + f"{ts_ms % 1000:03d}"


def age(seconds: float) -> str:
    """A duration, short: ``4.2s``, ``3m12s``, ``2h05m``."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """`value` on one line, cut to `limit` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def percent(progress: float) -> str:
    """Progress (0-100) as a short percentage."""
    return f"{progress:.0f}%"


def terminal_width() -> int:
    """Columns of the terminal stdout is on (80 elsewhere)."""
    return shutil.get_terminal_size((80, 24)).columns


def is_terminal() -> bool:
    """Whether stdout is a terminal (live redraws) rather than a pipe or file (lines)."""
    return sys.stdout.isatty()
