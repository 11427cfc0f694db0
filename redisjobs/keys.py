"""Every key and channel of one queue, spelled once (DESIGN.md, "Keyspace").

All keys of a queue share the hash tag ``{queue}`` so each Lua script touches a single cluster
slot. Scripts receive :attr:`QueueKeys.prefix` as ``KEYS[1]`` and derive the other names from it in
``_lib.lua``; this module and that file are the only places that know the layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeGuard

from .errors import InvalidJobId

PREFIX = "rj"
GROUP = "workers"
QUEUES_KEY = f"{PREFIX}:queues"
WORKERS_KEY = f"{PREFIX}:workers"

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")

JOB_ID_RULE = "1-200 characters of A-Z a-z 0-9 _ - . @ + =, not starting with - or ."
JOB_ID = re.compile(r"^[A-Za-z0-9_@+=][A-Za-z0-9_@+=.\-]{0,199}$")
"""What a job id a caller chooses must match (in full: see :func:`check_job_id`).

No ``:``, so an id never spells another key of a job (``job:<id>:log``); no glob characters,
so a job's key or channel used as a pattern (SCAN MATCH, PSUBSCRIBE) matches that job alone; no
braces (hash tags), ``/``, ``#``, ``%`` or spaces, so it is a path segment of the HTTP API as
it is; no leading ``-`` (a command-line option) or ``.`` (the ``.`` and ``..`` segments). Also
a JSON Schema pattern, where ``$`` ends the string (Python's ``$`` allows a final newline:
match it in full).
"""


def is_job_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a valid job id (a string of :data:`JOB_ID_RULE`)."""
    return isinstance(value, str) and JOB_ID.fullmatch(value) is not None


def check_job_id(job_id: object) -> str:
    """`job_id` when it is a valid job id (see :data:`JOB_ID_RULE`).

    Every call that turns a caller's id into a key checks it here first. Ids that came out of
    Redis are used as they are, unchecked: a worker must serve whatever a producer wrote.

    Raises:
        InvalidJobId: not a string, or not of the charset, or empty, or too long.
    """
    if is_job_id(job_id):
        return job_id
    if not isinstance(job_id, str):
        raise InvalidJobId(f"a job id must be a string, got {type(job_id).__name__}")
    shown = repr(job_id[:60]) + ("..." if len(job_id) > 60 else "")  # hostile ids can be huge
    raise InvalidJobId(f"invalid job id {shown}: a job id is {JOB_ID_RULE}")


def worker_key(worker_id: str) -> str:
    """Registry hash of one worker (outside any queue, so not under a hash tag)."""
    return f"{PREFIX}:worker:{worker_id}"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """Key names of one queue.

    Args:
        queue: the queue name; letters, digits and ``_ . : -`` only, so it can never break
            out of its hash tag.
    """

    queue: str
    prefix: str = field(init=False)

    def __post_init__(self) -> None:
        if not _QUEUE_NAME.match(self.queue):
            raise ValueError(f"invalid queue name {self.queue!r}: use 1-128 of A-Z a-z 0-9 _ . : -")
        object.__setattr__(self, "prefix", f"{PREFIX}:{{{self.queue}}}:")

    @property
    def ready(self) -> str:
        """Stream of runnable jobs, consumer group :data:`GROUP`."""
        return self.prefix + "ready"

    @property
    def delayed(self) -> str:
        """Sorted set of job id -> due time (ms)."""
        return self.prefix + "delayed"

    @property
    def dead(self) -> str:
        """Sorted set of jobs that failed for good."""
        return self.prefix + "dead"

    @property
    def stats(self) -> str:
        """Hash of counters."""
        return self.prefix + "stats"

    @property
    def events(self) -> str:
        """Pub/sub pattern matching every job channel of the queue (PSUBSCRIBE to it).

        Events are published once, on the job's channel: a second, queue-wide channel would
        double the PUBLISH calls of every transition for the few followers of a whole queue.
        Queue names hold no glob characters, so the pattern matches job channels only.
        """
        return self.prefix + "job:*:events"

    @property
    def control(self) -> str:
        """Pub/sub channel that wakes workers: cancel requests and new due times."""
        return self.prefix + "control"

    @property
    def log(self) -> str:
        """Capped stream with the same events as :attr:`events`, for replay."""
        return self.prefix + "log"

    @property
    def leases(self) -> str:
        """Hash of worker id -> its lease_ttl in ms: how long *its* jobs may stay silent before
        others take them over (the holder's lease governs, not the reclaimer's)."""
        return self.prefix + "leases"

    # The spellers below take a valid id (check_job_id) or one that came out of Redis; they do
    # not check it themselves, since the worker's hot path spells keys of ids read from Redis.

    def job(self, job_id: str) -> str:
        """Hash of one job."""
        return f"{self.prefix}job:{job_id}"

    def job_events(self, job_id: str) -> str:
        """Pub/sub channel of one job's events."""
        return f"{self.prefix}job:{job_id}:events"

    def job_log(self, job_id: str) -> str:
        """Capped list of the log lines a job wrote through ``ctx.log``."""
        return f"{self.prefix}job:{job_id}:log"

    def job_trace(self, job_id: str) -> str:
        """String holding the W3C trace context a job's producer left for its worker."""
        return f"{self.prefix}job:{job_id}:trace"

    def status(self, status: str) -> str:
        """Sorted-set index of the jobs in one status."""
        return f"{self.prefix}status:{status}"
