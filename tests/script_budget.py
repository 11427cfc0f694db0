"""How long one bounded script may hold Redis on the machine the tests run on.

Work that grows with a backlog (cleaning, promoting, trimming, draining a backlog) must come in
short scripts, and tests check it with SLOWLOG. On a quiet machine a batch takes 1-3 ms and
10 ms is the bound. A slow or loaded runner takes several times longer for the same batch
(purge batches of 8-15 ms, seen on a machine where a Python loop of 10**7 additions took
1.7 s), while a script doing a whole backlog at once takes seconds on any machine. So the bound
follows the machine: three times what a yardstick script (``reference.lua``, about one batch's
work) takes on the same server, never less than 10 ms. The sizes of the batches themselves
are pinned exactly elsewhere (tests/test_script_bounds.py); this bound is the net under them.
"""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path
from typing import Any

FLOOR_US = 10_000
TIMES_REFERENCE = 3
REFERENCE_STEPS = 1000
RUNS = 5
SCRIPTS = (b"EVALSHA", b"EVAL", b"FCALL")
_REFERENCE = (Path(__file__).with_name("reference.lua")).read_text()


async def script_budget_us(redis: Any) -> int:
    """The bound (µs) for one script on `redis`: :data:`TIMES_REFERENCE` times the median
    time of the yardstick, at least :data:`FLOOR_US`."""
    sha = await redis.script_load(_REFERENCE)
    key = f"script-budget:{uuid.uuid4().hex}"
    took: list[float] = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        await redis.evalsha(sha, 1, key, REFERENCE_STEPS)
        took.append(time.perf_counter() - t0)
    return max(FLOOR_US, int(TIMES_REFERENCE * statistics.median(took) * 1e6))


async def watch_scripts(redis: Any) -> int:
    """Have SLOWLOG keep what runs over this machine's budget, from now on; returns it (µs)."""
    budget = await script_budget_us(redis)
    await redis.config_set("slowlog-log-slower-than", budget)
    await redis.slowlog_reset()
    return budget


async def slow_scripts(redis: Any) -> list[tuple[float, bytes]]:
    """The scripts SLOWLOG holds: (ms, the start of the command)."""
    entries: Any = await redis.slowlog_get(1024)
    return [
        (e["duration"] / 1000, e["command"][:80])
        for e in entries
        if e["command"].split()[0].upper() in SCRIPTS
    ]
