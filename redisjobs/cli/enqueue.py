"""``redisjobs enqueue``: one job, its payload given as JSON or read from stdin."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..client import Client
from ..errors import CallRefused, JobCancelled, JobFailed
from ..job import JobStatus
from .args import json_value
from .common import UsageError, connect
from .render import print_json, to_json


class _Stdin:
    """The payload argument ``-``: the payload is read from stdin (at run time, not parse)."""

    def __repr__(self) -> str:
        return "-"


STDIN = _Stdin()

OPTIONS = (
    "delay",
    "at",
    "job_id",
    "priority",
    "max_retries",
    "retry_delay",
    "timeout",
    "result_ttl",
)
"""The enqueue options given on the command line, passed on when given (None: the default)."""


def payload(text: str) -> Any:
    """The payload argument: JSON, or ``-`` for JSON on stdin (an argparse type)."""
    return STDIN if text == "-" else json_value(text)


def read_payload(given: Any) -> Any:
    """The payload itself: `given`, or the JSON document on stdin when `given` is STDIN.

    Raises:
        UsageError: stdin holds no JSON document.
    """
    if given is not STDIN:
        return given
    text = sys.stdin.buffer.read().decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the payload on stdin is not valid JSON ({exc})") from None


async def enqueue(args: argparse.Namespace) -> int:
    """Enqueue one job; print its id (and with ``--wait``, its result).

    With ``--wait --json`` the document is the job as it ended: its final status with its result
    or error (exit status 1 unless it completed).
    """
    body = read_payload(args.payload)  # before connecting: a bad payload is a usage error
    options = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    async with connect(args.redis, args.command, args.queue) as client:
        try:
            job = await client.enqueue(args.kind, body, **options)
        except (CallRefused, ValueError) as exc:  # a refused payload or option: exit status 2
            raise UsageError(str(exc)) from None
        document: dict[str, Any] = {"id": job.id, "queue": job.queue, "status": job.status}
        if not args.json:
            print(job.id, flush=True)  # before waiting: the id is worth having if the wait fails
        if args.wait is not None:
            await _wait(client, document, args.wait, as_json=args.json)
    if args.json:
        print_json(document)
    return 1 if document["status"] in (JobStatus.FAILED, JobStatus.CANCELLED) else 0


async def _wait(client: Client, document: dict[str, Any], wait: float, *, as_json: bool) -> None:
    """Wait for the job of `document` and record how it ended there (and print its result).

    Without `as_json`, a job that failed or was cancelled raises (one line, exit status 1), as
    does a wait that times out in both modes.
    """
    try:
        document["result"] = await client.wait(
            document["id"], timeout=None if math.isinf(wait) else wait
        )
    except JobFailed as exc:  # JobCancelled too
        if not as_json:
            raise
        cancelled = isinstance(exc, JobCancelled)
        document["status"] = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
        document["error"] = exc.error
        return
    document["status"] = JobStatus.COMPLETED
    if not as_json:
        print(to_json(document["result"]))
