"""The fault harness: faultable redis-servers, worker processes, a ledger, an event tail, a checker.

Everything here drives *real* processes: ``redis-server`` children and ``python -m redisjobs
worker`` children. The fixtures in ``conftest.py`` hand these out per test and clean up after
them; import the helpers below directly when a test needs one outside a fixture.

* :class:`FaultRedis` — a :class:`~redisjobs.testing.RedisServer` in a persistence mode
  (``"plain"``: none, ``"aof"``: AOF everysec), optionally with ``DEBUG`` enabled, that can be
  crashed (SIGKILL), paused (SIGSTOP) and restarted on the same port and directory (an AOF
  restart reloads the data).
* :class:`Ledger` — a list in a second redis-server that is never faulted, where the
  ``tests.jobs:ledger`` job records ``start``/``end <job_id> <pid> <attempt> <lease>``, so
  executions are counted even when the queue's Redis restarts empty.
* :class:`WorkerProcess` / :class:`Spawner` — ``redisjobs worker`` subprocesses against an
  explicit Redis URL (a proxy port works too), each with its own log file, CPU time readable
  from ``/proc``.
* :class:`EventTail` — follows the queue's capped ``log`` stream every 100 ms from a cursor,
  surviving Redis restarts, and keeps every event; it *detects* (never hides) a gap where the
  cap trimmed entries it had not read yet.
* :func:`check` — the checker every scenario ends with: lost jobs, duplicate executions,
  duplicate outcomes, the keyspace audit; returns :class:`Figures`, prints them and appends
  them to ``$FAULTS_RESULTS``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

from redis.asyncio import Redis
from redis.exceptions import RedisError

from redisjobs import Client, ConnectionFailed, Event
from redisjobs.connection import Backend
from redisjobs.errors import NotReplicated
from redisjobs.events import FINAL_EVENTS
from redisjobs.job import FINAL_STATUSES
from redisjobs.keys import GROUP, REGISTRY, QueueKeys, Registry
from redisjobs.options import new_job_id
from redisjobs.testing import RedisServer
from tests.faults.audit import audit

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------------------------
# waiting


async def until(
    predicate: Callable[[], Awaitable[object] | object],
    timeout: float,
    what: str,
    *,
    interval: float = 0.02,
) -> float:
    """Poll `predicate` (sync or async) until it is truthy; returns the seconds it took.

    Raises AssertionError naming `what` after `timeout` seconds. Use this instead of sleeping
    and then asserting.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return time.monotonic() - t0
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def wait_process(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The exit status of `proc`, waiting at most `timeout` s (AssertionError if still alive)."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"process {proc.pid} still running after {timeout} s") from None


# --------------------------------------------------------------------------------------------
# redis-servers


def redis_args(mode: str = "plain", *, debug: bool = False) -> list[str]:
    """``redis-server`` arguments of a persistence `mode`: ``plain`` (none) or ``aof``."""
    if mode == "plain":
        args: list[str] = []
    elif mode == "aof":
        args = ["--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        raise ValueError(f"unknown redis mode {mode!r}: use 'plain' or 'aof'")
    if debug:
        args += ["--enable-debug-command", "local"]
    return args


class FaultRedis(RedisServer):
    """A redis-server under test, that tests may crash, pause and restart.

    Args:
        mode: ``"plain"`` (no persistence: a restart comes back empty) or ``"aof"``
            (``appendonly yes``, ``appendfsync everysec``: a restart reloads the data).
        debug: enable the ``DEBUG`` command for local connections.
        args: more ``redis-server`` arguments (e.g. ``["--maxmemory", "20mb"]``).
        port: a fixed port (default: a free one).

    :meth:`crash` + :meth:`restart` keep the port and the directory (``stop()`` deletes the
    directory, so use it only at the very end; the fixtures do).
    """

    def __init__(
        self,
        mode: str = "plain",
        *,
        debug: bool = False,
        args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        super().__init__(port, args=[*redis_args(mode, debug=debug), *args])
        self.mode = mode

    @property
    def pid(self) -> int:
        """The server's process id (it must be running)."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        """True while the process lives (it may be paused)."""
        return self.proc is not None and self.proc.poll() is None

    def crash(self) -> None:
        """SIGKILL the server (resuming it first if paused); port and directory stay."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
        self.kill()

    def restart(self, timeout: float = 20.0) -> Self:
        """Start again on the same port and directory (crashing it first if it runs).

        Returns once it answers PING, i.e. after an AOF has been loaded.
        """
        self.crash()
        return self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open, nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop for good (resuming a paused server first) and remove the directory."""
        if self.running:
            self.resume()
        self.stop()


async def redis_time_ms(redis: Redis) -> int:
    """Redis's clock in ms (the clock every event `ts` uses)."""
    secs, micros = await redis.time()
    return int(secs) * 1000 + int(micros) // 1000


# --------------------------------------------------------------------------------------------
# the ledger


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One line of the ledger: ``start``/``end`` of one run of one job."""

    what: str
    job_id: str
    pid: int
    attempt: int
    lease: int


class Ledger:
    """The list where ``tests.jobs:ledger`` records every run, in a Redis that is never faulted.

    Args:
        url: the ledger Redis.
        key: the list (one per test).

    Workers find it through ``LEDGER_URL``/``LEDGER_KEY`` (:meth:`env`; the spawner sets it).
    """

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.redis = Redis.from_url(url)

    def env(self) -> dict[str, str]:
        """The environment a worker process needs to write here."""
        return {"LEDGER_URL": self.url, "LEDGER_KEY": self.key}

    async def entries(self) -> list[LedgerEntry]:
        """Every line so far, in order."""
        raw: Any = await self.redis.lrange(self.key, 0, -1)
        out = []
        for line in raw:
            what, job_id, pid, attempt, lease = line.decode().split()
            out.append(LedgerEntry(what, job_id, int(pid), int(attempt), int(lease)))
        return out

    async def starts(self) -> collections.Counter[str]:
        """Runs started per job id."""
        return collections.Counter(e.job_id for e in await self.entries() if e.what == "start")

    async def aclose(self) -> None:
        """Close the connection."""
        await self.redis.aclose()


# --------------------------------------------------------------------------------------------
# worker processes


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` so far, in seconds (from ``/proc/<pid>/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


class WorkerProcess:
    """One ``python -m redisjobs worker`` child.

    Attributes:
        proc: the Popen (stdout and stderr go to :attr:`log_path`).
        name: the name given to the spawner (unique per test).
        url: the Redis URL it was pointed at.
        queue: the queue it serves.
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], name: str, log_path: Path, url: str, queue: str
    ):
        self.proc = proc
        self.name = name
        self.log_path = log_path
        self.url = url
        self.queue = queue

    @property
    def pid(self) -> int:
        """The process id (the worker's consumer name contains ``-<pid>-``)."""
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9, and reap it (resumes a stopped process first)."""
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM (graceful stop; a second one hands running jobs back at once)."""
        self.proc.send_signal(signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: frozen, sockets open, no heartbeats."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        self.proc.send_signal(signal.SIGCONT)

    def wait(self, timeout: float) -> int:
        """Its exit status (AssertionError when it is still running after `timeout` s)."""
        return wait_process(self.proc, timeout)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) it has used so far."""
        return cpu_seconds(self.pid)

    def log(self) -> str:
        """What it has written to stdout/stderr so far."""
        return self.log_path.read_text(errors="replace")

    def owns(self, consumer: str | bytes) -> bool:
        """True when `consumer` (a worker id / consumer name) is this process's."""
        name = consumer.decode() if isinstance(consumer, bytes) else consumer
        return f"-{self.pid}-" in name

    async def wait_registered(
        self, redis: Redis, timeout: float = 15.0, registry: Registry = REGISTRY
    ) -> float:
        """Wait until it is serving (its entry is in the ``rj:workers`` registry; on a cluster,
        `redis` is the registry's home and `registry` the cluster's)."""

        async def registered() -> bool:
            members: Any = await redis.zrange(registry.workers, 0, -1)
            return any(self.owns(m) for m in members)

        return await until(registered, timeout, f"worker {self.name} to register")

    async def registry(self, redis: Redis) -> dict[str, str]:
        """Its ``rj:worker:<id>`` registry hash (``held``, ``heartbeat_at`` ms, …); {} if none."""
        members: Any = await redis.zrange(REGISTRY.workers, 0, -1)
        for m in members:
            if self.owns(m):
                h: Any = await redis.hgetall(REGISTRY.worker(m.decode()))
                return {k.decode(): v.decode() for k, v in h.items()}
        return {}

    def __repr__(self) -> str:
        return f"<WorkerProcess {self.name} pid={self.pid} alive={self.alive}>"


class Spawner:
    """Starts worker processes for one test and kills whatever is left at the end.

    Args:
        log_dir: where each worker's log goes (``<name>.log``).
        queue: the default queue.
        env: extra environment for every worker (the ledger's, usually).
    """

    def __init__(self, log_dir: Path, queue: str, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.queue = queue
        self.env = dict(env or {})
        self.procs: list[WorkerProcess] = []

    def spawn(
        self,
        url: str,
        *args: str,
        queue: str | None = None,
        name: str | None = None,
        concurrency: int | None = 10,
        lease_ttl: float | None = 2.0,
        reclaim_interval: float | None = 0.5,
        grace: float | None = None,
        max_deliveries: int | None = None,
        modules: Iterable[str] = ("tests.jobs",),
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """Start ``python -m redisjobs worker --url URL --queue Q -m tests.jobs …``.

        Args:
            url: the Redis the worker talks to (the server's URL, or a proxy's).
            args: more command-line arguments, appended last (they win).
            queue: the queue (default: the test's).
            name: names the log file (default ``w<n>``).
            concurrency, lease_ttl, reclaim_interval, grace, max_deliveries: the worker's
                options; None leaves the CLI default.
            modules: modules the call executor may run.
            env: more environment variables for this one.

        cwd is the repository root and PYTHONPATH points there, so ``tests.jobs`` imports.
        """
        name = name or f"w{len(self.procs)}"
        q = queue or self.queue
        cmd = [sys.executable, "-m", "redisjobs", "worker", "--url", url, "--queue", q]
        for m in modules:
            cmd += ["-m", m]
        options = {
            "--concurrency": concurrency,
            "--lease-ttl": lease_ttl,
            "--reclaim-interval": reclaim_interval,
            "--grace": grace,
            "--max-deliveries": max_deliveries,
        }
        for flag, value in options.items():
            if value is not None:
                cmd += [flag, str(value)]
        cmd += args
        return self.spawn_command(cmd, url, queue=q, name=name, env=env)

    async def start(self, url: str, n: int, redis: Redis, **options: Any) -> list[WorkerProcess]:
        """Spawn `n` workers with the same `options` (see :meth:`spawn`) and wait until each
        has registered in `redis`."""
        procs = [self.spawn(url, **options) for _ in range(n)]
        for proc in procs:
            await proc.wait_registered(redis)
        return procs

    def spawn_command(
        self,
        cmd: Sequence[str],
        url: str,
        *,
        queue: str | None = None,
        name: str | None = None,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """Start any command as a worker process of this test (same env, log file, cleanup).

        For a worker that is not the CLI, e.g. ``[sys.executable, "-c", "...Worker(...)..."]``.
        """
        name = name or f"w{len(self.procs)}"
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env, **(env or {})}
        full_env.pop("REDIS_URL", None)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                list(cmd), cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
            )
        worker = WorkerProcess(proc, name, log_path, url, queue or self.queue)
        self.procs.append(worker)
        return worker

    def respawn(self, old: WorkerProcess, **kwargs: Any) -> WorkerProcess:
        """Start a worker like `old` again (same URL and queue, `kwargs` as for :meth:`spawn`)."""
        args = _options_of(old.proc.args)
        args.update(kwargs)
        return self.spawn(old.url, queue=old.queue, **args)

    def cleanup(self) -> None:
        """Kill every worker still running (stopped ones are resumed first)."""
        for w in self.procs:
            if w.alive:
                w.kill()


def _options_of(cmd: Any) -> dict[str, Any]:
    """The spawn() keyword options encoded in a worker command line."""
    flags = {
        "--concurrency": ("concurrency", int),
        "--lease-ttl": ("lease_ttl", float),
        "--reclaim-interval": ("reclaim_interval", float),
        "--grace": ("grace", float),
        "--max-deliveries": ("max_deliveries", int),
    }
    out: dict[str, Any] = dict.fromkeys(name for name, _ in flags.values())
    cmd = list(cmd)
    for i, arg in enumerate(cmd[:-1]):
        if arg in flags:
            name, conv = flags[arg]
            out[name] = conv(cmd[i + 1])
    return out


# --------------------------------------------------------------------------------------------
# the event tail


class EventTail:
    """Every event of a queue, read from its capped ``log`` stream while the scenario runs.

    Args:
        url: the queue's Redis.
        queue: the queue.
        interval: seconds between reads.

    ``await tail.start()``, run the scenario, ``await tail.drain()`` before reading
    :attr:`events`. It reads from a cursor with ``XRANGE (cursor + COUNT`` in a MULTI with
    ``XINFO STREAM``: when ``max-deleted-entry-id`` is past the cursor, the cap trimmed entries
    it had not read, and the gap is recorded in :attr:`gaps` (the checker fails on it) rather
    than silently missed. Connection errors (Redis down or restarting) are retried every
    `interval`; after a restart from AOF the stream comes back and the cursor still applies;
    after a restart empty, new entries have later ids (time based) and are read as they come.
    """

    def __init__(self, url: str, queue: str, *, interval: float = 0.1) -> None:
        self.url = url
        self.keys = QueueKeys(queue)
        self.interval = interval
        self.events: list[Event] = []
        self.gaps: list[str] = []
        self.errors = 0
        self.cursor = "0-0"
        # A sentinel URL follows the master; a cluster's, the master of the queue's slot
        self._redis = Backend(url).client(socket_timeout=2, home=self.keys.prefix)
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._lock = asyncio.Lock()

    async def start(self) -> Self:
        """Start following in the background."""
        self._task = asyncio.create_task(self._loop(), name=f"tail {self.keys.queue}")
        return self

    async def _loop(self) -> None:
        # A stop flag as well as the cancel: on Python 3.11 a cancel that lands just as a
        # redis-py read completes can be swallowed, and the loop would go on.
        while not self._stopped:
            with contextlib.suppress(RedisError, OSError):
                await self.read()
            await asyncio.sleep(self.interval)

    async def read(self) -> int:
        """Read what is new now; returns how many events (raises on connection errors).

        One read at a time (the background loop and :meth:`drain` share the cursor).
        """
        total = 0
        async with self._lock:
            while True:
                try:
                    n = await self._read_batch()
                except (RedisError, OSError):
                    self.errors += 1
                    raise
                total += n
                if n < 10_000:
                    return total

    async def _read_batch(self) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xrange(self.keys.log, f"({self.cursor}", "+", count=10_000)
            pipe.xinfo_stream(self.keys.log)
            entries, info = await pipe.execute(raise_on_error=False)
        if isinstance(entries, Exception):
            raise entries
        if isinstance(info, Exception):
            return 0  # no stream yet (or not after a restart empty)
        deleted = _sid(info.get("max-deleted-entry-id", b"0-0"))
        if deleted > _sid(self.cursor):
            self.gaps.append(f"log trimmed up to {deleted} past the tail's cursor {self.cursor}")
        for eid, fields in entries:
            sid = eid.decode()
            self.events.append(Event.decode(fields[b"e"], sid, self.keys.queue))
            self.cursor = sid
        return len(entries)

    async def drain(self, timeout: float = 10.0) -> list[Event]:
        """Read until caught up (retrying through connection errors for `timeout` s)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.read()
                return self.events
            except (RedisError, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(self.interval)

    def of_type(self, *types: str) -> list[Event]:
        """The events of these types, in log order."""
        return [e for e in self.events if e.type in types]

    def terminal_counts(self) -> collections.Counter[str]:
        """Terminal events (completed/failed/cancelled) per job id."""
        return collections.Counter(e.job_id for e in self.events if e.type in FINAL_EVENTS)

    def terminal_events(self) -> dict[str, Event]:
        """The first terminal event of each job."""
        out: dict[str, Event] = {}
        for e in self.events:
            if e.type in FINAL_EVENTS:
                out.setdefault(e.job_id, e)
        return out

    async def stop(self) -> None:
        """Stop following and close the connection."""
        self._stopped = True
        if self._task is not None:
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait([self._task], timeout=1)
            self._task = None
        await self._redis.aclose()


def _sid(value: str | bytes) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


# --------------------------------------------------------------------------------------------
# the queue's state


async def statuses(redis: Redis, queue: str, job_ids: Sequence[str]) -> dict[str, str | None]:
    """job id -> status (None when the hash does not exist), in pipelined batches."""
    keys = QueueKeys(queue)
    out: dict[str, str | None] = {}
    for i in range(0, len(job_ids), 1000):
        chunk = job_ids[i : i + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hget(keys.job(job_id), "status")
            replies = await pipe.execute()
        for job_id, status in zip(chunk, replies, strict=True):
            out[job_id] = status.decode() if status is not None else None
    return out


async def count_final(redis: Redis, queue: str) -> int:
    """Jobs of the queue in a final status now (the sizes of the final status indexes)."""
    keys = QueueKeys(queue)
    async with redis.pipeline(transaction=False) as pipe:
        for status in FINAL_STATUSES:
            pipe.zcard(keys.status(status))
        sizes = await pipe.execute()
    return sum(int(s) for s in sizes)


async def in_flight(redis: Redis, queue: str, worker: WorkerProcess) -> list[str]:
    """Job ids in `worker`'s PELs now: the jobs it holds (call right after killing it)."""
    out: list[str] = []
    for stream in QueueKeys(queue).streams:
        try:
            consumers: Any = await redis.xinfo_consumers(stream, GROUP)
        except RedisError:
            continue
        for c in consumers:
            if not worker.owns(c["name"]):
                continue
            pending: Any = await redis.xpending_range(stream, GROUP, "-", "+", 100_000, c["name"])
            for p in pending:
                msg = p["message_id"]
                rows: Any = await redis.xrange(stream, msg, msg)
                if rows:
                    out.append(rows[0][1][b"id"].decode())
    return out


def jobs_call(fn: str, **args: Any) -> tuple[str, dict[str, Any]]:
    """A ``call`` step (``(kind, payload)``) of the function `fn` of ``tests.jobs``."""
    return ("call", {"fn": f"tests.jobs:{fn}", "args": args})


async def enqueue_ledger_jobs(
    client: Client, n: int, seconds: float = 0.05, **options: Any
) -> list[str]:
    """Enqueue `n` ``tests.jobs:ledger`` jobs (each sleeps `seconds`); their ids."""
    spec = {"kind": "call", "payload": {"fn": "tests.jobs:ledger", "args": {"seconds": seconds}}}
    jobs = await client.enqueue_many([{**spec, **options} for _ in range(n)])
    return [j.id for j in jobs]


async def produce_resending(client: Client, acknowledged: list[str], jobs: int, batch: int) -> int:
    """Enqueue `jobs` ledger jobs in batches of `batch`, re-sending a failed batch with the same
    ids (a dedup hit if it was written) until it is acknowledged, each acknowledged id added to
    `acknowledged`; returns the re-sends. A trickle (~8 s for 2,000 in batches of 20), so that a
    fault at half way leaves jobs to enqueue after it."""
    spec = {"kind": "call", "payload": {"fn": "tests.jobs:ledger", "args": {"seconds": 0.005}}}
    resent = 0
    for _ in range(jobs // batch):
        ids = [new_job_id() for _ in range(batch)]
        while True:
            try:
                await client.enqueue_many([{**spec, "job_id": i} for i in ids])
                break
            except (ConnectionFailed, NotReplicated):
                resent += 1
                await asyncio.sleep(0.05)
        acknowledged.extend(ids)
        await asyncio.sleep(0.08)
    return resent


async def outcomes_after(redis: Redis, tail: EventTail, since: float) -> tuple[float, float]:
    """Seconds from `since` (monotonic) to the first and the last outcome recorded after it."""
    await tail.drain()
    now_ms = await redis_time_ms(redis)
    since_ms = now_ms - (time.monotonic() - since) * 1000
    ts = sorted(e.ts for e in tail.terminal_events().values() if e.ts >= since_ms)
    assert ts, "no job ended after the fault: nothing shows the workers serve again"
    return (ts[0] - since_ms) / 1000, (ts[-1] - since_ms) / 1000


# --------------------------------------------------------------------------------------------
# the checker


@dataclass
class Figures:
    """What one scenario measured; :meth:`emit` prints it and appends it to ``$FAULTS_RESULTS``.

    Attributes:
        scenario: a short name (``"1 kill -9"``).
        jobs: acknowledged enqueues checked.
        lost: of those, not in a final status after the recovery budget (or gone).
        duplicate_executions: runs beyond the first, summed over jobs (from the ledger).
        duplicate_outcomes: jobs whose terminal events were not exactly one.
        recovery_s: the scenario's recovery time, when it measures one.
        statuses: final status -> jobs.
        audit: the invariant audit's violations (empty when consistent).
        extra: anything else the scenario wants in its line (CPU, bounds, counts).
    """

    scenario: str
    jobs: int
    lost: int
    duplicate_executions: int
    duplicate_outcomes: int
    recovery_s: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    audit: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One human-readable line."""
        rec = "-" if self.recovery_s is None else f"{self.recovery_s:.2f} s"
        text = (
            f"[{self.scenario}] jobs={self.jobs} lost={self.lost} "
            f"dup_exec={self.duplicate_executions} dup_outcomes={self.duplicate_outcomes} "
            f"recovery={rec} audit={len(self.audit)}"
        )
        if self.extra:
            text += " " + " ".join(f"{k}={_fmt(v)}" for k, v in self.extra.items())
        return text

    def emit(self) -> None:
        """Print the line (shown with ``-s``) and append a JSON line to ``$FAULTS_RESULTS``."""
        print("\n" + self.line())
        path = os.environ.get("FAULTS_RESULTS")
        if path:
            record = {**asdict(self), "audit": self.audit[:20], "at": time.time()}
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, default=str) + "\n")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


async def check(
    scenario: str,
    redis: Redis,
    queue: str,
    job_ids: Sequence[str],
    *,
    tail: EventTail,
    ledger: Ledger | None = None,
    budget: float = 30.0,
    recovery_s: float | None = None,
    max_duplicate_executions: int = 0,
    max_lost: int | None = 0,
    run_audit: bool = True,
    extra: dict[str, Any] | None = None,
    measure: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> Figures:
    """Check a scenario's outcome and report its figures; call it once the faults are over.

    Args:
        scenario: names the line in the report.
        redis: a connection to the queue's Redis.
        queue: the queue.
        job_ids: every *acknowledged* enqueue the scenario made (enqueue returned).
        tail: the scenario's event tail (terminal events are counted from it).
        ledger: the ledger, when the jobs were ``tests.jobs:ledger`` (executions counted).
        budget: seconds the jobs get to reach a final status before the rest count as lost.
        recovery_s: the recovery time the scenario measured, for the report.
        max_duplicate_executions: the scenario's bar for runs beyond the first.
        max_lost: the scenario's bar for lost jobs (None: counted, not a bar; a lost job
            is then left out of the other counts, which are about the jobs that exist).
        run_audit: run :func:`~tests.faults.audit.audit` (needs a quiet queue).
        extra: more figures for the report.
        measure: awaited once the jobs settled and the tail is drained (so it can read
            ``tail.terminal_events()``); returns more figures: a ``recovery_s`` key sets
            :attr:`Figures.recovery_s`, the rest go to :attr:`Figures.extra`.

    It waits (polling) until every job is final or `budget` is spent, drains the tail, counts,
    audits, emits the :class:`Figures` and only then asserts: 0 lost, 0 duplicate outcomes,
    duplicate executions within the bar, an empty audit, no gap in the tail.
    """
    ids = list(job_ids)
    final: dict[str, str | None] = {}

    async def settled() -> bool:
        nonlocal final
        final = await statuses(redis, queue, ids)
        return all(s in FINAL_STATUSES for s in final.values())

    with contextlib.suppress(AssertionError):
        await until(settled, budget, "every job to reach a final status", interval=0.1)
    lost = [j for j, s in final.items() if s not in FINAL_STATUSES]
    await tail.drain()
    outcomes = tail.terminal_counts()
    dup_outcomes = [j for j in ids if outcomes.get(j, 0) != 1 and j not in lost]
    dup_exec = 0
    if ledger is not None:
        starts = await ledger.starts()
        dup_exec = sum(max(0, starts.get(j, 0) - 1) for j in ids if j not in lost)
    problems = await audit(redis, queue) if run_audit else []
    more = dict(extra or {})
    if measure is not None:
        more |= await measure()
    recovery_s = more.pop("recovery_s", recovery_s)
    figures = Figures(
        scenario=scenario,
        jobs=len(ids),
        lost=len(lost),
        duplicate_executions=dup_exec,
        duplicate_outcomes=len(dup_outcomes),
        recovery_s=recovery_s,
        statuses=dict(collections.Counter(s or "gone" for s in final.values())),
        audit=problems,
        extra=more,
    )
    figures.emit()
    assert max_lost is None or len(lost) <= max_lost, (
        f"{len(lost)} jobs lost, e.g. {lost[:5]} ({[final[j] for j in lost[:5]]})"
    )
    assert not dup_outcomes, (
        f"{len(dup_outcomes)} jobs without exactly one outcome, e.g. "
        f"{[(j, outcomes.get(j, 0)) for j in dup_outcomes[:5]]}; events of the first: "
        f"{[e for e in tail.events if e.job_id == dup_outcomes[0]]}"
    )
    assert dup_exec <= max_duplicate_executions, (
        f"{dup_exec} duplicate executions > {max_duplicate_executions}"
    )
    assert not problems, "audit: " + "; ".join(problems[:10])
    assert not tail.gaps, "event tail missed entries: " + "; ".join(tail.gaps[:3])
    return figures
