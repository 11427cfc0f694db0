"""Every exception redisjobs raises on purpose.

The tree::

    RedisJobsError
    ├── ConnectionFailed        Redis could not be reached (the URL is named, password masked)
    ├── RedisOutOfMemory        Redis refused an enqueue: out of memory (maxmemory, noeviction)
    ├── NotReplicated           a durable write was not confirmed by its replicas in time
    ├── QueueFull               an enqueue would bring a queue's backlog above its max_pending
    ├── SerializationError      a payload or result msgpack cannot encode/decode
    │   └── PayloadTooLarge     an encoded payload is over the client's size cap
    ├── InvalidJobId            a caller's job id is not 1-200 of the job id charset (a ValueError)
    ├── JobNotFound             no job with that id (never existed, or expired after result_ttl)
    ├── JobFailed               `wait` on a job that failed for good; carries the error text
    │   └── JobCancelled        `wait` on a job that was cancelled
    ├── WaitTimeout             `wait` gave up before the job finished (also a TimeoutError)
    ├── QueueInUse              `obliterate` of a queue live workers serve (without force)
    ├── UnknownExecutor         no executor for a job's kind on this worker
    ├── MissingExtra            a feature's package is not installed (an ImportError)
    ├── ExecutorError           an executor's run failed: exit code, HTTP status, timeout, refusal
    │   └── PayloadError        a payload the executor cannot use (never retried)
    │       └── CallRefused     a `call` payload naming a function that may not run
    ├── Retry                   raised *by a job* to ask for a retry, maybe after `defer` s
    ├── RateLimited             raised *by a job* to run again later without using an attempt
    └── Declined                raised by an executor: not run here, another worker may take it

``except TimeoutError`` catches `WaitTimeout`, as the JobManager seed expects.
"""

from __future__ import annotations

from redis.exceptions import RedisError


class RedisJobsError(Exception):
    """Base class of every redisjobs exception."""


class ConnectionFailed(RedisJobsError):
    """Redis could not be reached (the message names the URL with the password masked)."""


class NotReplicated(RedisJobsError, RedisError):
    """A durable write (``durable=``) reached the master, but fewer replicas than asked for
    confirmed it within the timeout: a failover now may lose it.

    Sending it again is safe (an enqueue with the same job id writes nothing twice) and waits
    again. Also a redis-py ``RedisError``, so that a worker's loops retry an outcome that was
    not confirmed as they retry one Redis did not answer.
    """


class RedisOutOfMemory(RedisJobsError):
    """Redis refused to store new jobs: it is at ``maxmemory`` (with ``noeviction``).

    Nothing of the refused call was written (the message says so, or which jobs of a multi-batch
    ``enqueue_many`` were). Jobs already running still record their outcomes.
    """


class QueueFull(RedisJobsError):
    """An enqueue was refused: its new jobs would bring the queue's backlog (its pending and
    scheduled jobs) above the queue's ``max_pending``.

    Nothing of the refused call was written; of a multi-batch ``enqueue_many``, the batches
    before it were (`enqueued` says how many jobs). Retry later, once workers have started
    some of the backlog.

    Args:
        queue: the queue.
        limit: its ``max_pending``.
        backlog: its pending and scheduled jobs when the call was refused.
        adding: the jobs the refused call would have created.
        enqueued: jobs of the same ``enqueue_many`` written before (earlier batches).
    """

    def __init__(
        self, queue: str, limit: int, backlog: int, adding: int, enqueued: int = 0
    ) -> None:
        before = f"; the first {enqueued} jobs of the call were enqueued" if enqueued else ""
        super().__init__(
            f"queue {queue!r} is full: {backlog} jobs waiting, max_pending {limit}; "
            f"{adding} more refused, none of them written{before}"
        )
        self.queue = queue
        self.limit = limit
        self.backlog = backlog
        self.adding = adding
        self.enqueued = enqueued


class SerializationError(RedisJobsError, TypeError):
    """A value could not be encoded to (or decoded from) msgpack."""


class PayloadTooLarge(SerializationError, ValueError):
    """An encoded payload is larger than the client's `max_payload_bytes`."""


class InvalidJobId(RedisJobsError, ValueError):
    """A job id a caller gave is not one (see :data:`redisjobs.keys.JOB_ID_RULE`).

    Raised before anything is read or written: such an id could name another key of the queue.
    """


class UnknownDependency(RedisJobsError, ValueError):
    """A job to enqueue depends on a job that does not exist (nothing was written)."""


class JobNotFound(RedisJobsError, KeyError):
    """No job with this id exists (it never did, or it expired after `result_ttl`)."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class JobFailed(RedisJobsError):
    """The job ended in failure; `error` holds the recorded error text."""

    def __init__(self, job_id: str, error: str | None) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error


class JobCancelled(JobFailed):
    """The job was cancelled before it could finish."""

    def __init__(self, job_id: str, error: str | None = None) -> None:
        RedisJobsError.__init__(self, f"job {job_id} was cancelled")
        self.job_id = job_id
        self.error = error or "cancelled"


class WaitTimeout(RedisJobsError, TimeoutError):
    """`wait` gave up before the job reached a final state."""


class QueueInUse(RedisJobsError):
    """``obliterate`` refused: live workers serve the queue (the message names them); stop
    them first or pass ``force=True``. Nothing was deleted."""


class UnknownExecutor(RedisJobsError, LookupError):
    """The worker has no executor registered for a job's kind."""


class MissingExtra(RedisJobsError, ImportError):
    """A feature needs a package of an extra that is not installed; the message says which
    ``pip install 'redisjobs[extra]'`` brings it.

    Args:
        feature: what could not load (``"the http executor"``).
        extra: the extra that brings its packages.
        missing: the ImportError of the absent package.
    """

    def __init__(self, feature: str, extra: str, missing: ImportError) -> None:
        package = missing.name or "a package"
        super().__init__(
            f"{feature} needs {package}, which is not installed: pip install 'redisjobs[{extra}]'",
            name=missing.name,
        )
        self.extra = extra


class ExecutorError(RedisJobsError):
    """An executor could not do a job, for the reason its message states.

    Executors raise it for an expected failure (a non-zero exit code, an HTTP error status, a
    timeout, a refused host); the message is recorded as the job's error as is, without a
    traceback. Jobs may raise it too.

    Args:
        message: what went wrong, readable on its own.
        retryable: False fails the job for good at once, whatever retries it has left.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class JobTimeout(ExecutorError):
    """A run, or a step an executor bounds (a request, a command), outlived its time limit.

    The job records why it failed as ``timeout`` (:attr:`redisjobs.Job.failure`), and is
    retried as any failure is.
    """


class PayloadError(ExecutorError, ValueError):
    """A payload the executor cannot use: a missing or ill-typed field, a refused value."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class CallRefused(PayloadError):
    """A ``call`` payload that may not run, for the reason its message gives.

    A malformed, private or dunder function name, arguments of the wrong shape, the reserved
    ``ctx`` passed by the caller, or (on a worker) a name that is neither registered nor a
    function defined in an allowed module. :meth:`Client.enqueue` raises it, writing nothing,
    for what a producer can tell; a worker fails such a job for good with its message.
    """


class Retry(RedisJobsError):
    """Raised by a job to ask for another attempt.

    Args:
        defer: seconds to wait before the next attempt; None uses the job's backoff policy.

    The retry still counts against the job's `max_retries`. Raised ``from`` an exception
    (``raise Retry(5) from exc``), the job's error is that exception's, not "retry requested".
    """

    def __init__(self, defer: float | None = None) -> None:
        super().__init__(f"retry requested (defer={defer})")
        self.defer = defer


MAX_RETRY_AFTER = 86400.0
"""The longest :class:`RateLimited` (or :class:`Declined`) wait, in seconds (one day, as for a
retry's delay)."""


def _retry_after(value: float) -> float:
    """`value` as the seconds of a wait before the job runs again, cut to a day.

    Raises:
        ValueError: it is negative or not a number.
    """
    if not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise ValueError(f"retry_after must be a number of seconds >= 0, not {value!r}")
    return min(float(value), MAX_RETRY_AFTER)


class RateLimited(RedisJobsError):
    """Raised by a job: what it calls is rate limiting it (an HTTP 429, say); run it later.

    The worker puts the job back as ``scheduled``, due `retry_after` seconds from now on
    Redis's clock, without using an attempt: the run does not count against `max_retries`
    and is not a failure (a ``deferred`` event, the ``deferred`` counter). A job deferred 100
    times (over all its attempts, until a ``retry`` of it starts the count again) fails for
    good, so one that is always refused cannot loop forever.

    Args:
        retry_after: seconds until it may run again, 0 to one day (longer is cut to a day).
        pause: also hold back, for as long, every job of the same limit key (for a job
            without one: every job of the queue), so the fleet stops calling that API at once.

    Raises:
        ValueError: `retry_after` is negative or not a number.
    """

    def __init__(self, retry_after: float = 1.0, *, pause: bool = False) -> None:
        self.retry_after = _retry_after(retry_after)
        super().__init__(f"rate limited: run again in {retry_after:g} s" + (", paused" * pause))
        self.pause = pause


class Declined(RedisJobsError):
    """Raised by an executor: this worker does not run the job (a filter of its own, such as the
    Pyjobkit face's ``kinds`` and ``tags``); another worker may.

    The worker puts the job back as ``scheduled``, due `retry_after` seconds from now on Redis's
    clock (so that a worker that declines it does not read it straight back), without using an
    attempt. Unlike :class:`RateLimited` it counts no deferral, so it never fails the job: a job
    that no running worker takes waits until one that does comes (a ``deferred`` event each
    time it is put back).

    Raises:
        ValueError: `retry_after` is negative or not a number.
    """

    def __init__(self, retry_after: float = 1.0, reason: str = "declined by this worker") -> None:
        self.retry_after = _retry_after(retry_after)
        super().__init__(reason)
