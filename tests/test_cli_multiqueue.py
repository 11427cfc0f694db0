"""``redisjobs worker`` over several queues, as real processes: one shared --concurrency."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redisjobs.cli.common import UsageError
from redisjobs.cli.serve import queues_of
from redisjobs.sync import Client as SyncClient
from redisjobs.testing import unique_queue
from tests.test_cli import ENV, ROOT, cli, command, one_line_error, stop, workers_of

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def ledger(redis_url: str) -> Iterator[tuple[redis.Redis, dict[str, str]]]:
    """The ledger jobs write their runs into, and the environment that points them at it."""
    key = f"ledger:{uuid.uuid4().hex}"
    r = redis.Redis.from_url(redis_url)
    yield r, {"LEDGER_URL": redis_url, "LEDGER_KEY": key}
    r.delete(key)
    r.close()


def run_worker(redis_url: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command("worker", "--redis", redis_url, "--lease-ttl", "2", *args),
        cwd=ROOT,
        env={**ENV, **env},
        stderr=subprocess.DEVNULL,
        text=True,
    )


def lines(r: redis.Redis, key: str, count: int) -> list[list[str]]:
    """The first `count` ledger lines (``start|end job pid attempt lease``), once written."""
    deadline = time.monotonic() + 30
    while r.llen(key) < count:
        assert time.monotonic() < deadline, f"{r.llen(key)} of {count} ledger lines"
        time.sleep(0.05)
    raw: Any = r.lrange(key, 0, count - 1)
    return [line.decode().split() for line in raw]


def enqueue(redis_url: str, queue: str, fn: str, n: int, seconds: float) -> set[str]:
    """Enqueue `n` runs of `fn` on `queue`; their ids."""
    with SyncClient(redis_url, queue=queue) as client:
        jobs = client.enqueue_many([("call", {"fn": fn, "args": [seconds]})] * n)
    return {job.id for job in jobs}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["queues", "app"])
def test_one_slot_over_two_queues_runs_one_job_at_a_time(
    redis_url: str, ledger: tuple[redis.Redis, dict[str, str]], how: str
) -> None:
    r, env = ledger
    first, second = unique_queue("cli-a"), unique_queue("cli-b")
    if how == "app":
        env = {**env, "QUEUES_APP_FIRST": first, "QUEUES_APP_SECOND": second}
        args, fns = ["tests.queues_app:app"], ("first", "second")
    else:
        args = ["--functions", "tests.jobs", "--queue", first, "--queue", second]
        fns = ("tests.jobs:ledger", "tests.jobs:ledger")
    proc = run_worker(redis_url, env, *args, "--concurrency", "1")
    try:
        for queue, fn in zip((first, second), fns, strict=True):
            enqueue(redis_url, queue, fn, 6, 0.02)
        runs = lines(r, env["LEDGER_KEY"], 24)
        # In the order Redis got them: every start is followed by the end of the same run.
        for begun, ended in zip(runs[::2], runs[1::2], strict=True):
            assert (begun[0], ended[0], begun[1]) == ("start", "end", ended[1]), runs
        # One process, one Worker: each queue's registry entry is of this process.
        for queue in (first, second):
            assert [w["pid"] for w in workers_of(redis_url, queue)] == [proc.pid]
    finally:
        assert stop(proc) == 0


@pytest.mark.slow
def test_weights_on_the_command_line_share_the_slots_in_their_ratio(
    redis_url: str, ledger: tuple[redis.Redis, dict[str, str]]
) -> None:
    r, env = ledger
    heavy, light = unique_queue("cli-heavy"), unique_queue("cli-light")
    ids = {
        queue: enqueue(redis_url, queue, "tests.jobs:ledger", n, 0.0)
        for queue, n in ((heavy, 60), (light, 30))
    }
    proc = run_worker(
        redis_url, env, "--functions", "tests.jobs", "-q", f"{heavy}:5", "-q", light, "-c", "1"
    )
    try:
        starts = [job for what, job, *_ in lines(r, env["LEDGER_KEY"], 72) if what == "start"]
    finally:
        assert stop(proc) == 0
    # 36 slots while both had backlog: 5 to the heavy queue for each 1 to the light one
    assert sum(job in ids[light] for job in starts) == 6
    assert sum(job in ids[heavy] for job in starts) == 30


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("q:0", "weight after ':' must be a whole number >= 1, not '0'"),
        ("q:-2", "not '-2'"),
        ("q:1.5", "not '1.5'"),
        (":3", "queue"),
    ],
)
def test_bad_weights_are_refused_clearly(option: str, error: str) -> None:
    done = cli("worker", "--redis", "memory://", "--queue", option)
    assert done.returncode == 2 and error in done.stderr, done.stderr


def test_no_weight_anywhere_is_strict_order_any_weight_makes_them_weighted() -> None:
    assert queues_of(None) is None
    assert queues_of([("a", None), ("b", None), ("a", None)]) == ["a", "b"]
    assert queues_of([("a", 5), ("b", None)]) == {"a": 5, "b": 1}
    with pytest.raises(UsageError, match="queue 'a' given twice with different weights"):
        queues_of([("a", 5), ("a", 1)])


def test_a_queue_named_with_a_colon_keeps_it() -> None:
    done = cli("worker", "--redis", "memory://", "--queue", "a:b:0")
    assert done.returncode == 2 and "queue 'a:b'" in one_line_error(done)
