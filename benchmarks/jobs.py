"""Job functions for the benchmarks, importable by the worker subprocesses.

A worker registers them with ``functions=[noop, sleep10]``, so a ``call`` payload names them by
their plain names: ``{"fn": "noop"}`` and ``{"fn": "sleep10"}``.
"""

from __future__ import annotations

import asyncio


async def noop() -> None:
    """Do nothing: measures the framework's own cost per job."""
    return None


async def sleep10() -> None:
    """Wait 10 ms without using the CPU: measures how well concurrency overlaps waiting jobs."""
    await asyncio.sleep(0.01)
