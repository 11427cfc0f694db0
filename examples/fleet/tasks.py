"""The job function the fleet's workers run.

A worker serves it with ``redisjobs worker --function examples.fleet.tasks:resize``; a producer
names it in a ``call`` payload: ``{"fn": "examples.fleet.tasks:resize", "args": {...}}``, or
with positional arguments, ``"args": [7, 320]`` (the worker passes ``ctx`` itself).
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import redis.asyncio as aioredis

from redisjobs import ExecContext

RESIZE = "examples.fleet.tasks:resize"
"""The name producers put in a ``call`` payload's ``fn``."""

TILES = 4
TILE_SECONDS = 0.02

_audit_redis: aioredis.Redis | None = None


async def resize(ctx: ExecContext, image_id: int, width: int = 640) -> dict[str, Any]:
    """Pretend to resize one image, tile by tile, reporting progress as it goes.

    Returns:
        What a caller of ``client.wait`` gets: the image, its new width and which worker did it
        (host name and pid: one container per worker in Docker, one process per worker locally).
    """
    await _audit(ctx)
    for tile in range(1, TILES + 1):
        await asyncio.sleep(TILE_SECONDS)  # stands in for decoding, scaling and encoding a tile
        # Throttled by the worker (a few writes a second per job), so calling it often is cheap.
        await ctx.set_progress(tile * 100 / TILES, f"tile {tile}/{TILES}")
    return {"image_id": image_id, "width": width, "worker": f"{socket.gethostname()}:{os.getpid()}"}


async def _audit(ctx: ExecContext) -> None:
    """Append ``<job id> <pid>`` to a Redis list when ``$FLEET_LEDGER_URL`` is set.

    Only the fleet test sets it: Redis records one outcome per job, so counting how often a job
    actually *ran* (which at-least-once delivery allows to exceed one) needs a record of its own.
    """
    global _audit_redis
    url = os.environ.get("FLEET_LEDGER_URL")
    if not url:
        return
    if _audit_redis is None:
        _audit_redis = aioredis.Redis.from_url(url)
    key = os.environ.get("FLEET_LEDGER_KEY", "fleet:ledger")
    await _audit_redis.rpush(key, f"{ctx.job_id} {os.getpid()}")
