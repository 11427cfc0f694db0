"""Every exception redisjobs raises on purpose.

The tree::

    RedisJobsError
    ├── ConnectionFailed        Redis could not be reached (the URL is named, password masked)
    ├── RedisOutOfMemory        Redis refused an enqueue: out of memory (maxmemory, noeviction)
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
    └── Retry                   raised *by a job* to ask for a retry, maybe after `defer` s

``except TimeoutError`` catches `WaitTimeout`, as the JobManager seed expects.
"""

from __future__ import annotations


class RedisJobsError(Exception):
    """Base class of every redisjobs exception."""


class ConnectionFailed(RedisJobsError):
    """Redis could not be reached (the message names the URL with the password masked)."""


class RedisOutOfMemory(RedisJobsError):
    """Redis refused to store new jobs: it is at ``maxmemory`` (with ``noeviction``).

    Nothing of the refused call was written (the message says so, or which jobs of a multi-batch
    ``enqueue_many`` were). Jobs already running still record their outcomes.
    """


class SerializationError(RedisJobsError, TypeError):
    """A value could not be encoded to (or decoded from) msgpack."""


class PayloadTooLarge(SerializationError, ValueError):
    """An encoded payload is larger than the client's `max_payload_bytes`."""


class InvalidJobId(RedisJobsError, ValueError):
    """A job id a caller gave is not one (see :data:`redisjobs.keys.JOB_ID_RULE`).

    Raised before anything is read or written: such an id could name another key of the queue.
    """


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

    The retry still counts against the job's `max_retries`.
    """

    def __init__(self, defer: float | None = None) -> None:
        super().__init__(f"retry requested (defer={defer})")
        self.defer = defer
