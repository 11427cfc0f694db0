"""The Pyjobkit face: Pyjobkit's modules and names, over redisjobs.

A Pyjobkit user switches by replacing ``pyjobkit`` with ``redisjobs.pyjobkit`` in the imports,
and the SQL backend with :class:`~redisjobs.pyjobkit.backends.redis.RedisBackend`::

    from redisjobs.pyjobkit import Engine, Worker
    from redisjobs.pyjobkit.backends.redis import RedisBackend
    from redisjobs.pyjobkit.executors import SubprocessExecutor

    engine = Engine(backend=RedisBackend("redis://..."), executors=[SubprocessExecutor()])
    job_id = await engine.enqueue(kind="subprocess", payload={"cmd": ["echo", "hi"]})
    await Worker(engine, max_concurrency=4).run()

The modules sit at Pyjobkit's paths: :mod:`.engine`, :mod:`.worker`, :mod:`.contracts`
(executors, their context, the log sink and event bus hooks), :mod:`.types` (statuses, the job
record), :mod:`.backends.memory`, :mod:`.backends.redis` and :mod:`.executors`.

It is a thin layer over :class:`~redisjobs.Client` and :class:`~redisjobs.Worker`, so it has
their guarantees, where Pyjobkit's own Redis backend falls short: attempts survive a claim
(``max_attempts`` is enforced), jobs scheduled for later never hold up ready ones, an
``idempotency_key`` is checked atomically with the write, and a lease that runs out (a worker
died) gives the job to another worker instead of failing it.

Differences, by design: a ``cmd`` string needs a worker whose
:class:`~redisjobs.executors.SubprocessExecutor` has ``allow_shell=True`` (a list runs
directly); :class:`~redisjobs.executors.HTTPExecutor` reaches loopback and private addresses
only when allowed (``allow_private``, or the host in ``allow_hosts``); statuses map as in
:data:`~redisjobs.pyjobkit.engine.STATUS`. ``priority`` orders jobs as Pyjobkit's does (lower
runs sooner, default 100).
"""

from __future__ import annotations

from .backends.memory import MemoryBackend
from .config import Config, ConfigError, load_config
from .contracts import ExecContext, Executor
from .engine import Engine
from .retry import (
    ExponentialBackoff,
    FixedDelay,
    JitteredExponentialBackoff,
    RetryPolicy,
    parse_policy,
)
from .types import FailureReason, JobRecord, JobResult, JobStatus, LogStream
from .worker import Worker

__version__ = "1.0.0"
"""The Pyjobkit API version this face provides."""

__all__ = [
    "Config",
    "ConfigError",
    "Engine",
    "ExecContext",
    "Executor",
    "ExponentialBackoff",
    "FailureReason",
    "FixedDelay",
    "JitteredExponentialBackoff",
    "JobRecord",
    "JobResult",
    "JobStatus",
    "LogStream",
    "MemoryBackend",
    "RetryPolicy",
    "Worker",
    "__version__",
    "load_config",
    "parse_policy",
]
