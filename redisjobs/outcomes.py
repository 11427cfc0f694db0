"""Recording what runs produced: results in batches, failures one by one, log lines buffered.

Successes are collected and written by one `complete` call per flush, so a burst of jobs that
finish together costs one round trip. Log lines ride along in the same flush, before the
outcomes they belong to. Writes retry through Redis outages (the fencing token makes a re-sent
outcome harmless); a run whose lease is lost stops retrying, since its outcome would be rejected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, RedisError

from .connection import Backoff
from .keys import QueueKeys
from .scripts import Scripts

log = logging.getLogger("redisjobs.worker")

LOG_LINES_KEPT = 1000

COMPLETE_BATCH = 128
"""Results per `complete` call: each script stays a few ms long, however many jobs finished."""
LOG_TTL_MS = 7 * 86400 * 1000  # until the job finishes and its result_ttl takes over


class Outcomes:
    """The outcome writer of one worker.

    Args:
        redis: the command connection.
        scripts: the scripts.
        keys: the queue.
        worker_id: the worker (fencing is per lease, the id is for the record).
        recorded: called with (job id, lease) once a job's outcome is written or rejected.
    """

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        keys: QueueKeys,
        worker_id: str,
        recorded: Callable[[str, int], None],
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._worker_id = worker_id
        self._recorded = recorded
        self._done: list[tuple[str, int, bytes]] = []
        self._logs: dict[str, list[str]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._dropping = False  # log lines are being dropped: Redis is out of memory

    def log_line(self, job_id: str, line: str) -> None:
        """Buffer a job's log line for the next flush."""
        lines = self._logs.setdefault(job_id, [])
        lines.append(line)
        if len(lines) > 2 * LOG_LINES_KEPT:  # a flood while Redis is slow: keep what LTRIM keeps
            del lines[:-LOG_LINES_KEPT]
        self._schedule()

    def success(self, job_id: str, lease: int, result: bytes) -> None:
        """Queue a result for the next flush."""
        self._done.append((job_id, lease, result))
        self._schedule()

    async def failure(
        self,
        job_id: str,
        lease: int,
        error: str,
        mode: str,
        defer_ms: int,
        lost: Callable[[], bool],
    ) -> str | None:
        """Record a failed (or cancelled) run; returns the script's outcome, None if `lost()`."""
        backoff = Backoff(f"record failure of {job_id}", log)
        while not lost():
            try:
                await self.write_logs()
                outcome, _ = await self._scripts.fail(
                    self._keys, self._worker_id, job_id, lease, error, mode=mode, defer_ms=defer_ms
                )
            except (RedisError, OSError) as exc:
                await backoff.failed(exc)
                continue
            if outcome == "stale":
                log.info("outcome of job %s rejected: another worker owns it now", job_id)
            elif outcome == "failed":
                log.warning("job %s failed: %s", job_id, error)
            self._recorded(job_id, lease)
            return outcome
        return None

    def _schedule(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        backoff = Backoff(f"record results on {self._keys.queue}", log)
        while self._done or self._logs:
            batch, self._done = self._done[:COMPLETE_BATCH], self._done[COMPLETE_BATCH:]
            try:
                await self.write_logs()
                codes = (
                    await self._scripts.complete(self._keys, self._worker_id, batch)
                    if batch
                    else []
                )
            except (RedisError, OSError) as exc:
                self._done[:0] = batch
                await backoff.failed(exc)
                continue
            backoff.ok()
            for (job_id, lease, _), code in zip(batch, codes, strict=True):
                if code == 0:
                    log.info("result of job %s rejected: another worker owns it now", job_id)
                self._recorded(job_id, lease)

    async def drain(self, timeout: float) -> None:
        """Wait (up to `timeout` s) until everything buffered is written."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher], timeout=timeout)

    async def write_logs(self) -> None:
        """Write buffered log lines now (capped per job, expiring with the job)."""
        if not self._logs:
            return
        logs, self._logs = self._logs, {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id, lines in logs.items():
                    key = self._keys.job_log(job_id)
                    pipe.rpush(key, *lines)
                    pipe.ltrim(key, -LOG_LINES_KEPT, -1)
                    pipe.pexpire(key, LOG_TTL_MS)
                await pipe.execute()
        except OutOfMemoryError:
            # Outcome scripts may use Redis's last memory (allow-oom); log lines may not, and
            # must not hold the outcomes back either: they are dropped. (The error quotes the
            # command, i.e. the job's own lines: it stays out of the worker's log.)
            if not self._dropping:
                dropped = sum(len(x) for x in logs.values())
                log.warning(
                    "Redis is out of memory (maxmemory): %d log lines of %d jobs dropped, and "
                    "more until it has memory again",
                    dropped,
                    len(logs),
                )
            self._dropping = True
            return
        except BaseException:
            for job_id, lines in logs.items():
                self._logs.setdefault(job_id, [])[:0] = lines
            raise
        self._dropping = False
