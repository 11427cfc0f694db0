"""Recording what runs produced: results in batches, failures one by one, log lines buffered.

Successes are collected and written by one `complete` call per flush, so a burst of jobs that
finish together costs one round trip. Log lines ride along in the same flush, before the
outcomes they belong to. Writes retry through Redis outages (the fencing token makes a re-sent
outcome harmless); a run whose lease is lost stops retrying, since its outcome would be rejected.

An error that retrying cannot fix (a key of the wrong type where a job's log or hash should be, a
script error) must never hold up the outcomes of other jobs: a batch that fails so is halved
until the job(s) to blame are found, the others are recorded, and each job to blame is failed for
good with the reason, or, when even that is refused, let go (its lease runs out and another run
takes over). A job's log lines that Redis refuses so are dropped, with one warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NamedTuple

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, RedisError

from .connection import Backoff, is_transient
from .job import FailureReason
from .keys import QueueKeys
from .scripts import Scripts

log = logging.getLogger("redisjobs.worker")

LOG_LINES_KEPT = 1000

COMPLETE_BATCH = 128
"""Results per `complete` call: each script stays a few ms long, however many jobs finished."""
LOG_TTL_MS = 7 * 86400 * 1000  # until the job finishes and its result_ttl takes over

Result = tuple[str, int, bytes, bool]  # job id, lease, result (msgpack), the run wrote log lines


class Failure(NamedTuple):
    """A run that ended without a result, as `fail.lua` records it."""

    mode: FailureReason
    """Why it failed, which is how `fail.lua` treats it: retried while attempts are left
    (``error``, ``timeout``), never retried (``fatal``), cancelled (``cancel``)."""
    error: str
    defer_ms: int = -1
    """An explicit retry delay (the job raised ``Retry(defer)``), or -1 for the job's policy."""


class Deferral(NamedTuple):
    """A run that asked to run again later without using an attempt (it raised
    :class:`~redisjobs.errors.RateLimited`, or its executor :class:`~redisjobs.errors.Declined`
    the job), as `defer.lua` records it."""

    retry_after_ms: int
    pause: bool = False
    """Hold the job's limit key (or, for a job without one, the queue) as long too."""
    counted: bool = True
    """Count it against the job's deferrals (False when the worker declined the job)."""


Ending = Failure | Deferral
"""How a run ended without a result."""


class Outcomes:
    """The outcome writer of one worker.

    Args:
        redis: the command connection.
        scripts: the scripts.
        keys: the queue.
        worker_id: the worker (fencing is per lease, the id is for the record).
        recorded: called with (job id, lease) once a job's outcome is written or rejected, or
            the job is let go.
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
        self._done: list[Result] = []
        self._logs: dict[str, list[str]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._dropping = False  # log lines are being dropped: Redis is out of memory
        self._unloggable: set[str] = set()  # jobs whose log key refused lines (warned once)
        # One log write at a time: a write_logs call returns once every line buffered before
        # it is in Redis, even lines another call (the flusher, a failure) took and still writes,
        # so that no outcome overtakes its job's lines (they would set a log's expiry after it).
        self._writing = asyncio.Lock()

    def log_line(self, job_id: str, line: str) -> None:
        """Buffer a job's log line for the next flush."""
        lines = self._logs.setdefault(job_id, [])
        lines.append(line)
        if len(lines) > 2 * LOG_LINES_KEPT:  # a flood while Redis is slow: keep what LTRIM keeps
            del lines[:-LOG_LINES_KEPT]
        self._schedule()

    def success(self, job_id: str, lease: int, result: bytes, *, logged: bool = True) -> None:
        """Queue a result for the next flush; `logged`: the run wrote log lines (if not, and
        no delivery came before it, the job has no log whose expiry to set)."""
        self._done.append((job_id, lease, result, logged))
        self._schedule()

    async def failure(
        self,
        job_id: str,
        lease: int,
        failure: Ending,
        lost: Callable[[], bool],
    ) -> str | None:
        """Record a failed (or cancelled) run, and why (`failure.mode`, a
        :data:`~redisjobs.job.FailureReason`), or a deferred one; returns the script's
        outcome, None if `lost()` (or the job was let go: see :meth:`_give_up`)."""
        backoff = Backoff(f"record failure of {job_id}", log)
        while not lost():
            try:
                await self.write_logs()
                return await self._fail(job_id, lease, failure)
            except (RedisError, OSError) as exc:  # transient only: the others are handled
                await backoff.failed(exc)
        return None

    async def _write(self, job_id: str, lease: int, failure: Ending) -> str:
        """Send `failure` to its script; its outcome."""
        if isinstance(failure, Deferral):
            outcome, _ = await self._scripts.defer(
                self._keys,
                self._worker_id,
                job_id,
                lease,
                failure.retry_after_ms,
                pause=failure.pause,
                counted=failure.counted,
            )
            if outcome == "deferred":
                log.info(
                    "job %s %s: deferred %g s%s, no attempt used",
                    job_id,
                    "rate limited" if failure.counted else "declined",
                    failure.retry_after_ms / 1000,
                    " and its limit key (or queue) held" if failure.pause else "",
                )
            return outcome
        outcome, _ = await self._scripts.fail(
            self._keys,
            self._worker_id,
            job_id,
            lease,
            failure.error,
            mode=failure.mode,
            defer_ms=failure.defer_ms,
        )
        return outcome

    async def _fail(self, job_id: str, lease: int, failure: Ending) -> str | None:
        try:
            outcome = await self._write(job_id, lease, failure)
        except (RedisError, OSError) as exc:
            if is_transient(exc):
                raise
            what = (
                "the deferral"
                if isinstance(failure, Deferral)
                else f"the failure ({failure.error})"
            )
            return await self._give_up(job_id, lease, f"could not record {what}", exc)
        if outcome == "stale":
            log.info("outcome of job %s rejected: another worker owns it now", job_id)
        elif outcome == "failed":
            error = "deferred too many times" if isinstance(failure, Deferral) else failure.error
            log.warning("job %s failed: %s", job_id, error)
        self._finished(job_id, lease)
        return outcome

    async def _give_up(self, job_id: str, lease: int, what: str, exc: Exception) -> str | None:
        """Fail a job for good whose outcome Redis refused with a permanent error `exc`; when
        that is refused too, let the job go (its lease runs out and another run takes over, up
        to max_deliveries times). Never a retry loop: the same write would fail the same way.

        Returns:
            The `fail` script's outcome; None when the job was let go.

        Raises:
            RedisError, OSError: a transient error; nothing was decided, try again.
        """
        why = f"{what}: {exc}"
        outcome: str | None
        try:
            outcome, _ = await self._scripts.fail(
                self._keys, self._worker_id, job_id, lease, why, mode="fatal"
            )
        except (RedisError, OSError) as again:
            if is_transient(again):
                raise
            log.error(
                "job %s: %s; failing it was refused too (%s): let go, another run takes over "
                "when its lease runs out",
                job_id,
                why,
                again,
            )
            outcome = None
        if outcome == "failed":
            log.error("job %s failed: %s", job_id, why)
        elif outcome is not None:  # 'stale' or 'dup': another run owns it, or it was recorded
            log.info("job %s: %s (%s)", job_id, why, outcome)
        self._finished(job_id, lease)
        return outcome

    def _finished(self, job_id: str, lease: int) -> None:
        self._unloggable.discard(job_id)
        self._recorded(job_id, lease)

    def _schedule(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        backoff = Backoff(f"record results on {self._keys.queue}", log)
        while self._done or self._logs:
            batch, self._done = self._done[:COMPLETE_BATCH], self._done[COMPLETE_BATCH:]
            parts = [batch] if batch else []
            try:
                await self.write_logs()
                while parts:
                    await self._complete(parts)
            except (RedisError, OSError) as exc:  # transient only: the others are handled
                self._done[:0] = [result for part in parts for result in part]
                await backoff.failed(exc)
                continue
            backoff.ok()

    async def _complete(self, parts: list[list[Result]]) -> None:
        """Write the results of the last of `parts` and take it off the list.

        A part that fails for good is replaced by its two halves, down to the one job to blame,
        which is failed or let go (:meth:`_give_up`). A script that fails midway keeps what it
        wrote before (Redis does not roll scripts back): those results answer "re-sent" when
        their half is sent again, and nothing is written twice. Transient errors raise, leaving
        `parts` as what is still to write.
        """
        part = parts[-1]
        try:
            codes = await self._scripts.complete(
                self._keys,
                self._worker_id,
                [(job_id, lease, result) for job_id, lease, result, _ in part],
                logged={job_id for job_id, _, _, logged in part if logged},
            )
        except (RedisError, OSError) as exc:
            if is_transient(exc):
                raise
            if len(part) > 1:
                parts[-1:] = [part[len(part) // 2 :], part[: len(part) // 2]]
                return
            job_id, lease, _, _ = part[0]
            await self._give_up(job_id, lease, "could not record the result", exc)
            parts.pop()
            return
        parts.pop()
        for (job_id, lease, _, _), code in zip(part, codes, strict=True):
            if code == 0:
                log.info("result of job %s rejected: another worker owns it now", job_id)
            self._finished(job_id, lease)

    async def drain(self, timeout: float) -> None:
        """Wait (up to `timeout` s) until everything buffered is written."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher], timeout=timeout)

    async def write_logs(self) -> None:
        """Write buffered log lines now (capped per job, expiring with the job).

        Lines Redis refuses for good (the job's log key holds another type) are dropped, with
        one warning per job; so is every line while Redis is out of memory.

        Raises:
            RedisError, OSError: a transient error; the lines it concerns are kept for the next
                try, the others were written.
        """
        async with self._writing:
            await self._write_logs()

    async def _write_logs(self) -> None:
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
                # Per-command replies: one job's refused key must not fail the others' lines.
                replies = await pipe.execute(raise_on_error=False)
        except BaseException:
            self._keep(logs)
            raise
        self._settle(logs, replies)

    def _settle(self, logs: dict[str, list[str]], replies: list[object]) -> None:
        """Act on each job's replies of :meth:`write_logs` (three per job)."""
        transient: Exception | None = None
        dropped = [0, 0]  # lines, jobs
        for n, (job_id, lines) in enumerate(logs.items()):
            exc = next((r for r in replies[3 * n : 3 * n + 3] if isinstance(r, Exception)), None)
            if exc is None:
                self._unloggable.discard(job_id)
            elif isinstance(exc, OutOfMemoryError):
                dropped[0] += len(lines)
                dropped[1] += 1
            elif is_transient(exc):
                self._keep({job_id: lines})
                transient = exc
            elif job_id not in self._unloggable:
                self._unloggable.add(job_id)
                log.warning(
                    "log lines of job %s dropped: Redis refuses them at %s (%s)",
                    job_id,
                    self._keys.job_log(job_id),
                    exc,
                )
        self._out_of_memory(*dropped)
        if transient is not None:
            raise transient

    def _out_of_memory(self, lines: int, jobs: int) -> None:
        # Outcome scripts may use Redis's last memory (allow-oom); log lines may not, and must not
        # hold the outcomes back either: they are dropped. (Replies are not annotated with the
        # command, i.e. the job's own lines: they stay out of the worker's log.)
        if lines and not self._dropping:
            log.warning(
                "Redis is out of memory (maxmemory): %d log lines of %d jobs dropped, and more "
                "until it has memory again",
                lines,
                jobs,
            )
        self._dropping = bool(lines)

    def _keep(self, logs: dict[str, list[str]]) -> None:
        """Put lines that were not written back in front of those buffered since."""
        for job_id, lines in logs.items():
            self._logs.setdefault(job_id, [])[:0] = lines
