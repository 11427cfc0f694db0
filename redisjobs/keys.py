"""Every key and channel of one queue, spelled once (docs/architecture.md, "Keyspace").

All keys of a queue share the hash tag ``{queue}`` so each Lua script touches a single cluster
slot. Scripts receive :attr:`QueueKeys.prefix` as ``KEYS[1]`` and derive the other names from it in
``_lib.lua``; this module and that file are the only places that know the layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# The name rules live in .names; they stay importable from here, where they long were.
from .names import JOB_ID as JOB_ID
from .names import JOB_ID_RULE as JOB_ID_RULE
from .names import check_job_id as check_job_id
from .names import check_queue_name
from .names import is_job_id as is_job_id
from .partitions import check_partitions, index_of, partition, partitions_of

PREFIX = "rj"
GROUP = "workers"


@dataclass(frozen=True, slots=True)
class Registry:
    """The keys outside any queue: the list of queues and the worker registry.

    On a single Redis they are ``rj:queues``, ``rj:workers`` and ``rj:worker:<id>``
    (:data:`REGISTRY`). On a Redis Cluster they carry the hash tag ``{#}``
    (:data:`CLUSTER_REGISTRY`: ``rj:{#}:queues`` ...), so that they live in one slot, on one
    master, and a pipeline of them stays on it; ``#`` is not allowed in a queue name, so no
    queue's keys can spell them.
    """

    prefix: str

    @property
    def queues(self) -> str:
        """Set of every queue anything was enqueued to or scheduled on."""
        return self.prefix + "queues"

    @property
    def workers(self) -> str:
        """Sorted set, worker id -> its last heartbeat (ms): the index of :meth:`worker`."""
        return self.prefix + "workers"

    def worker(self, worker_id: str) -> str:
        """Registry hash of one live worker."""
        return f"{self.prefix}worker:{worker_id}"


REGISTRY = Registry(f"{PREFIX}:")
CLUSTER_REGISTRY = Registry(f"{PREFIX}:{{#}}:")


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
        check_queue_name(self.queue)
        object.__setattr__(self, "prefix", f"{PREFIX}:{{{self.queue}}}:")

    @property
    def ready(self) -> str:
        """Stream of runnable jobs, consumer group :data:`GROUP`."""
        return self.prefix + "ready"

    @property
    def prio(self) -> str:
        """Sorted set of runnable jobs at a priority other than the default, job id ->
        ``priority * 2**31 + seq`` (the default priority's jobs are entries of :attr:`ready`)."""
        return self.prefix + "prio"

    @property
    def carry(self) -> str:
        """Stream, consumer group :data:`GROUP`, whose entries (ids ``0-<n>``) carry the leases
        of jobs taken from :attr:`prio`: the PEL of either stream holds a worker's leases."""
        return self.prefix + "carry"

    @property
    def streams(self) -> tuple[str, str]:
        """The two streams whose PELs hold leases: :attr:`ready` and :attr:`carry`."""
        return (self.ready, self.carry)

    def stream_of(self, entry_id: str) -> str:
        """The stream a job's entry (its ``msg``) is in: ``0-<n>`` ids are :attr:`carry`'s."""
        return self.carry if entry_id.startswith("0-") else self.ready

    @property
    def paused(self) -> str:
        """String that exists while the queue is paused: workers lease nothing new."""
        return self.prefix + "paused"

    @property
    def limits(self) -> str:
        """Hash of the queue's flow settings: field ``max_pending`` bounds its backlog (an
        ``enqueue`` beyond it is refused with :class:`~redisjobs.errors.QueueFull`); ``q``,
        ``k:*`` and ``k:<key>`` hold rate specs. Absent for a queue without any, which then
        pays no command for them."""
        return self.prefix + "limits"

    @property
    def hold(self) -> str:
        """String with a PX TTL: while it exists the queue leases nothing new. Set by a job
        without a limit key that raised ``RateLimited(pause=True)``."""
        return self.prefix + "hold"

    def key_hold(self, key: str) -> str:
        """String with a PX TTL: while it exists no job of limit key `key` is leased. Set by
        a job of that key that raised ``RateLimited(pause=True)``."""
        return f"{self.prefix}hold:{key}"

    @property
    def limit_keys(self) -> str:
        """Sorted set, the schedule of limit keys with backlog: key -> the time (ms) it may
        next be served (0: now), served round-robin by ``start``. A key at its max_running is
        off it until one of its jobs ends."""
        return self.prefix + "keys"

    def key_jobs(self, key: str) -> str:
        """Sorted set of the runnable jobs of limit key `key`, scored as :attr:`prio`."""
        return f"{self.prefix}kq:{key}"

    def key_active(self, key: str) -> str:
        """Set of the running jobs of limit key `key` (its max_running counts them)."""
        return f"{self.prefix}active:{key}"

    def tat(self, field: str) -> str:
        """String, the GCRA state (theoretical arrival time, ms) of the rate spec in field
        `field` of :attr:`limits` (``q`` or ``k:<key>``); it expires once that time is past."""
        return f"{self.prefix}tat:{field}"

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
    def history(self) -> str:
        """Stream of the queue's counters and depth, an entry a minute, its id the minute: see
        :mod:`redisjobs.history`."""
        return self.prefix + "history"

    @property
    def control(self) -> str:
        """Pub/sub channel that wakes workers: cancel requests, new due times, pause and
        resume."""
        return self.prefix + "control"

    @property
    def handover(self) -> str:
        """Stream of the ends of this queue's jobs that jobs of other queues wait for, not yet
        delivered to them (fields ``q`` their queue, ``c`` the job, ``p`` the parent's
        ``queue/id``, ``o`` its outcome, ``v`` its result or error): see
        :mod:`redisjobs.handover`."""
        return self.prefix + "handover"

    @property
    def log(self) -> str:
        """Capped stream of the queue's events (field ``e``), the one place they are written:
        followers read it live (XREAD BLOCK) and replay it from an id."""
        return self.prefix + "log"

    @property
    def leases(self) -> str:
        """Hash of worker id -> its lease_ttl in ms: how long *its* jobs may stay silent before
        others take them over (the holder's lease governs, not the reclaimer's)."""
        return self.prefix + "leases"

    @property
    def schedules(self) -> str:
        """Hash of schedule id -> its spec, msgpack as the Client encoded it (no script
        decodes it)."""
        return self.prefix + "schedules"

    @property
    def schedule_due(self) -> str:
        """Sorted set of schedule id -> its next due time (ms); a finished schedule leaves it."""
        return self.prefix + "schedule:due"

    def schedule_state(self, schedule_id: str) -> str:
        """Hash of one schedule's plain fields (``rev runs limit end last_run last_job``), the
        ones the scripts read and write. An id holds no ``:``, so it never spells
        :attr:`schedule_due`."""
        return f"{self.prefix}schedule:{schedule_id}:state"

    # The spellers below take a valid id (check_job_id) or one that came out of Redis; they do
    # not check it themselves, since the worker's hot path spells keys of ids read from Redis.

    def job(self, job_id: str) -> str:
        """Hash of one job."""
        return f"{self.prefix}job:{job_id}"

    def job_log(self, job_id: str) -> str:
        """Capped list of the log lines a job wrote through ``ctx.log``."""
        return f"{self.prefix}job:{job_id}:log"

    def job_trace(self, job_id: str) -> str:
        """String holding the W3C trace context a job's producer left for its worker."""
        return f"{self.prefix}job:{job_id}:trace"

    def job_deps(self, job_id: str) -> str:
        """Hash of the parents a job waits for (its edges): parent ref -> the policy on its
        failure, then ``policy=outcome`` once it ended."""
        return f"{self.prefix}job:{job_id}:deps"

    def job_results(self, job_id: str) -> str:
        """Hash of the results of a job's parents that completed (ref -> msgpack), and the
        errors of those that failed under ``ignore`` or ``run`` (``!ref`` -> text)."""
        return f"{self.prefix}job:{job_id}:results"

    def job_dependents(self, job_id: str) -> str:
        """Set of the jobs waiting for a job: ids of its queue, ``queue/id`` of others."""
        return f"{self.prefix}job:{job_id}:dependents"

    def status(self, status: str) -> str:
        """Sorted-set index of the jobs in one status."""
        return f"{self.prefix}status:{status}"

    def unique(self, unique_key: str) -> str:
        """String naming the job that holds a unique lock (expires after its `unique_ttl`)."""
        return f"{self.prefix}unique:{unique_key}"

    @property
    def unique_pattern(self) -> str:
        """Glob matching every unique lock of the queue (for SCAN, in audits)."""
        return self.prefix + "unique:*"

    def idem(self, job_id: str) -> str:
        """String recording how a job with an `idempotency_ttl` ended, outliving its hash."""
        return f"{self.prefix}idem:{job_id}"


class QueueNames:
    """A client's default queue and the key names of every queue it has used (a cache).

    Args:
        queue: the queue used when a call names none (checked now, not at the first call).
        partitions: the partitions of its queues (a count for `queue`, or queue -> count;
            see :mod:`redisjobs.partitions`).
    """

    def __init__(self, queue: str, partitions: int | Mapping[str, int] = 1) -> None:
        self.queue = queue
        self._keys: dict[str, QueueKeys] = {}
        self.keys(queue)
        self.partitions = check_partitions(partitions, queue)
        """queue -> its count of partitions, for the partitioned ones."""

    def keys(self, queue: str | None = None) -> QueueKeys:
        """The key names of `queue` (default: the client's queue)."""
        q = queue or self.queue
        keys = self._keys.get(q)
        if keys is None:  # two threads may both build it: equal values, either is kept
            keys = self._keys[q] = QueueKeys(q)
        return keys

    def count(self, queue: str | None) -> int:
        """The partitions of `queue` (default: the client's queue); 1 when not partitioned."""
        return self.partitions.get(queue or self.queue, 1)

    def every(self, queue: str | None) -> list[QueueKeys]:
        """The keys of `queue`, or of each of its partitions."""
        q = queue or self.queue
        return [self.keys(name) for name in partitions_of(q, self.count(q))]

    def _job_keys(self, job_id: str, queue: str | None) -> QueueKeys:
        """The keys of `queue` for a call about `job_id`, once the id is known to be valid (of
        the job's partition, for a partitioned queue)."""
        check_job_id(job_id)  # before any key is spelled: an id with ':' names another key
        q = queue or self.queue
        count = self.partitions.get(q)
        return self.keys(q if count is None else partition(q, index_of(job_id, count)))

    def placed(
        self, queue: str | None, job_ids: Sequence[str]
    ) -> list[tuple[QueueKeys, list[int]]]:
        """Where jobs of `queue` go: the keys of each partition `job_ids` hash to, with the
        positions of theirs (one group, all of them, for a queue of one partition)."""
        q = queue or self.queue
        count = self.partitions.get(q)
        if count is None:
            return [(self.keys(q), list(range(len(job_ids))))]
        groups: dict[int, list[int]] = {}
        for i, job_id in enumerate(job_ids):
            groups.setdefault(index_of(job_id, count), []).append(i)
        return [(self.keys(partition(q, p)), at) for p, at in groups.items()]
