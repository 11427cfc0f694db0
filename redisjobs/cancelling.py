"""Ending asyncio tasks for sure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

RECANCEL_SECONDS = 0.1
"""How long a cancelled task gets to end before it is cancelled again."""


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again those that go on.

    One cancel is not always enough: on Python 3.11, ``asyncio.wait_for`` (which redis-py wraps
    around every read and write) swallows a cancellation that arrives as the awaited operation
    completes, and the task then carries on with its next command as if never cancelled.

    Cancelled itself meanwhile (cleanup code often runs in a task being cancelled), it still
    ends `tasks` first, so that none outlives its owner, and then raises ``CancelledError``.
    """
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    interrupted = False
    while pending:
        for task in pending:
            task.cancel()
        try:
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
        except asyncio.CancelledError:
            interrupted = True
    for task in tasks:  # their errors were theirs to report: mark them retrieved
        if not task.cancelled():
            task.exception()
    if interrupted:
        raise asyncio.CancelledError
