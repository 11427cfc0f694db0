"""The pieces subcommands are built of: argument types and the options many of them share."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from ..names import check_job_id, check_queue_name

_STREAM_ID = re.compile(r"^\d+(-\d+)?$")


class Parser(argparse.ArgumentParser):
    """argparse, with each error on one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Report a bad argument and exit."""
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _bounded(kind: type[int] | type[float], *, zero_ok: bool) -> Callable[[str], Any]:
    noun = "an integer" if kind is int else "a number"
    bound = ">= 0" if zero_ok else "> 0"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"expected {noun} {bound}, got {text!r}")
        return value

    return parse


positive_int = _bounded(int, zero_ok=False)
non_negative_int = _bounded(int, zero_ok=True)
positive_float = _bounded(float, zero_ok=False)
non_negative_float = _bounded(float, zero_ok=True)


def queue_name(text: str) -> str:
    """A valid queue name (an argparse type)."""
    try:
        return check_queue_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_NUMBER = re.compile(r"[-+]?[0-9]*\.?[0-9]+")


def weighted_queue(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:WEIGHT`` (an argparse type): a queue and its weight (None: none given).

    Queue names may hold colons: the text after the last one is a weight when it is a number.
    """
    name, colon, tail = text.rpartition(":")
    if not (colon and _NUMBER.fullmatch(tail)):
        return queue_name(text), None
    if not tail.lstrip("+-").isdigit() or int(tail) < 1:
        raise argparse.ArgumentTypeError(
            f"queue {name!r}: the weight after ':' must be a whole number >= 1, not {tail!r}"
        )
    return queue_name(name), int(tail)


def job_id(text: str) -> str:
    """A valid job id (an argparse type)."""
    try:
        return check_job_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def json_value(text: str) -> Any:
    """A JSON document (an argparse type)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None


def stream_id(text: str) -> str:
    """An event log id, ``<ms>[-<seq>]`` (an argparse type)."""
    if not _STREAM_ID.match(text):
        raise argparse.ArgumentTypeError(f"expected an event id (0, 1700000000000-0), got {text!r}")
    return text


def port_number(text: str) -> int:
    """A TCP port, 1-65535 (an argparse type)."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1-65535, got {text!r}")
    return int(text)


def moment(text: str) -> datetime:
    """A point in time: ISO 8601 (no zone: UTC) or seconds since the epoch (an argparse type)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an ISO 8601 time (2030-01-31T06:00:00Z) or epoch seconds, got {text!r}"
            ) from None
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected epoch seconds >= 0, got {text!r}")
    return datetime.fromtimestamp(seconds, UTC)


def add_redis(p: argparse.ArgumentParser, fallback: str = "") -> None:
    """``--redis URL`` (also ``--dsn``, ``--url``), read by :func:`.common.connect`."""
    p.add_argument(
        "--redis",
        "--dsn",
        "--url",
        dest="redis",
        metavar="URL",
        help="redis://[user:password@]host:port/db, rediss://…, or "
        "redis+sentinel://host:26379[,host:26379...]/service_name[/db], "
        "redis+cluster://host:port[,host:port...]/ "
        f"(default: $REDIS_URL{fallback})",
    )


def add_json(p: argparse.ArgumentParser, what: str = "one JSON document") -> None:
    """``--json``: the command's output for scripts instead of text."""
    p.add_argument("--json", action="store_true", help=f"print {what}, for scripts")


def add_queue(p: argparse.ArgumentParser) -> None:
    """``--queue/-q``, default ``default``: for commands on a queue."""
    p.add_argument("--queue", "-q", type=queue_name, default="default", help="default: default")


def add_job(p: argparse.ArgumentParser) -> None:
    """The positional ``JOB`` and a ``--queue`` that narrows the search for it."""
    p.add_argument("job_id", metavar="JOB", type=job_id)
    p.add_argument(
        "--queue", "-q", type=queue_name, help="the job's queue (default: whichever holds it)"
    )
