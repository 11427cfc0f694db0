"""The `call` executor: only functions defined in an allowed module run, and arguments bind
around the ones the worker passes (`ctx`, `job_id`), on in-process and real worker processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest

from redisjobs import CallRefused, Client, JobFailed
from redisjobs.executors import CallExecutor
from redisjobs.scripts import Scripts
from redisjobs.testing import unique_queue
from redisjobs.wire import build_row
from tests import jobs
from tests.conftest import WorkerFactory

ROOT = Path(__file__).resolve().parent.parent

# fn -> the reason the worker gives; each is asked with a payload that would leave `marker`
# behind if it ran (the marker's path is substituted for MARKER, an existing file for SOURCE).
REFUSED = {
    "tests.jobs:os.system": "os is the module os, not a class of tests.jobs",
    "tests.jobs:os.path.join": "only a function or a Class.method of the module",
    "tests.jobs:os": "os is the module os, not a function",
    "tests.jobs:copyfile": "it is shutil:copyfile, imported into tests.jobs, not defined there",
    "tests.jobs:Greeter": "Greeter is the class tests.jobs.Greeter, not a function",
    "tests.jobs:Greeter.run": "Greeter.run is not a static or class method",
    "tests.jobs:Maths.instance_only": "Maths.instance_only is not a static or class method",
    "tests.jobs:Maths.factor": "Maths.factor is not a static or class method",
    "tests.jobs:Retry": "Retry is the class redisjobs.errors.Retry, not a function",
    "tests.jobs:ExecContext.request_cancel": "not a class of tests.jobs",
    "tests.jobs:nothing_here": "tests.jobs defines no nothing_here",
    "tests.jobs:__builtins__": "'__builtins__' is a dunder name",
    "tests.jobs:add.__globals__": "'__globals__' is a dunder name",
    "tests.jobs:Greeter.__init__": "'__init__' is a dunder name",
    "tests.jobs:_ledger_line": "'_ledger_line' is a private name",
    "tests.jobs:aioredis.Redis.from_url": "only a function or a Class.method of the module",
    "tests.jobs.missing:f": "cannot import tests.jobs.missing",
    "os:system": "it is not allowed on this worker (register it, or allow its module)",
}
ARGS = {
    "tests.jobs:os.system": ["touch MARKER"],
    "tests.jobs:copyfile": ["SOURCE", "MARKER"],
}


def _payload(fn: str, marker: Path) -> dict[str, Any]:
    source = str(Path(__file__))
    raw = ARGS.get(fn, ["MARKER"])
    args = [a.replace("MARKER", str(marker)).replace("SOURCE", source) for a in raw]
    return {"fn": fn, "args": args}


async def enqueue_raw(client: Client, job_id: str, payload: Any, max_retries: int = 3) -> str:
    """Enqueue as a producer in another language would, past the Client's own checks."""
    row = build_row("job", None, {"job_id": job_id}, client.options, client.options.policy(), 64)
    row = row._replace(kind="call", payload=msgpack.packb(payload), max_retries=max_retries)
    await Scripts(client.redis, embedded=client.backend.embedded).enqueue(client.keys(), [row])
    return job_id


async def _refused_reasons(client: Client, ids: dict[str, str]) -> dict[str, str]:
    reasons = {}
    for fn, job_id in ids.items():
        with pytest.raises(JobFailed) as failed:
            await client.wait(job_id, timeout=10)
        job = await client.get(job_id)
        assert job is not None and job.attempt == 1, f"{fn} was retried: not failed for good"
        reasons[fn] = str(failed.value.error)
    return reasons


async def test_worker_refuses_all_but_functions_defined_in_allowed_modules(
    client: Client, worker: WorkerFactory, tmp_path: Path
) -> None:
    await worker(modules=["tests.jobs"])
    marker = tmp_path / "marker"
    ids = {}
    for n, fn in enumerate(REFUSED):
        ids[fn] = await enqueue_raw(client, f"refused-{n}", _payload(fn, marker))
    reasons = await _refused_reasons(client, ids)
    for fn, why in REFUSED.items():
        assert reasons[fn].startswith(f"function {fn!r} refused: "), reasons[fn]
        assert why in reasons[fn], (fn, reasons[fn])
    assert not marker.exists()

    legit = {
        "tests.jobs:add": ([2, 3], 5),
        "tests.jobs:Maths.double": ([4], 8),
        "tests.jobs:Maths.triple": ([4], 12),
        "tests.jobs:copy": ([__file__, str(marker)], str(marker)),
    }
    for fn, (args, result) in legit.items():
        job = await client.enqueue("call", {"fn": fn, "args": args})
        assert await client.wait(job.id, timeout=10) == result
    assert marker.exists()  # the same payload runs when the function is the module's own


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"fn": "tests.jobs:__builtins__"}, "'__builtins__' is a dunder name"),
        ({"fn": "tests.jobs:add.__globals__"}, "'__globals__' is a dunder name"),
        ({"fn": "tests.jobs:_ledger_line"}, "'_ledger_line' is a private name"),
        ({"fn": "os:system;rm"}, "'system;rm' is not an identifier"),
        ({"fn": "a:b:c"}, "'b:c' is not an identifier"),
        ({"fn": "tests..jobs:add"}, "it has an empty part"),
        ({"fn": ""}, "it is empty"),
        ({"fn": "a" * 201}, "longer than 200 characters"),
        ({"fn": 42}, '"fn" must be a function name string, got int'),
        ({"fn": None, "args": [1]}, '"fn" must be a function name string, got NoneType'),
        ({"fn": "add", "args": "ab"}, '"args" must be a list or a map, got str'),
        ({"fn": "add", "kwargs": [1]}, '"kwargs" must be a map, got list'),
        ({"fn": "add", "args": {"ctx": 1}}, "'ctx' is reserved"),
        ({"fn": "add", "kwargs": {"ctx": 1}}, "'ctx' is reserved"),
    ],
)
async def test_client_refuses_a_hostile_or_malformed_call(
    client: Client, payload: dict[str, Any], why: str
) -> None:
    with pytest.raises(CallRefused, match=why) as refused:
        await client.enqueue("call", payload)
    assert isinstance(refused.value, ValueError)
    with pytest.raises(CallRefused, match=why):
        await client.enqueue_many([("call", {"fn": "add"}), ("call", payload)])
    assert (await client.stats())["enqueued"] == 0  # nothing written, not even the good one


async def test_ctx_passed_by_a_producer_fails_the_job_for_good(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(modules=["tests.jobs"])
    job_id = await enqueue_raw(client, "ctx-1", {"fn": "tests.jobs:add", "kwargs": {"ctx": 1}})
    with pytest.raises(JobFailed, match=r"tests\.jobs:add: 'ctx' is reserved: the worker passes"):
        await client.wait(job_id, timeout=10)


async def test_registration_needs_a_name_payloads_may_use(worker: WorkerFactory) -> None:
    with pytest.raises(CallRefused, match="'_ledger_line' is a private name"):
        await worker(functions={"_ledger_line": jobs._ledger_line})
    with pytest.raises(CallRefused, match="register it under a public one"):
        await worker(functions=[jobs._ledger_line])


@pytest.mark.parametrize(
    ("fn", "payload_args", "expected"),
    [
        ("resize", {"args": ["a.png", 640]}, {"path": "a.png", "width": 640}),
        ("resize", {"args": ["a.png"], "kwargs": {"width": 8}}, {"path": "a.png", "width": 8}),
        ("resize", {"args": {"path": "b.png", "width": 1}}, {"path": "b.png", "width": 1}),
        ("placed", {"args": [1, 5, 6, 7]}, [1, 5, [6, 7], True, "JOB"]),
        ("placed", {"args": [1]}, [1, 2, [], True, "JOB"]),
        ("placed", {"args": [1], "kwargs": {"b": 3, "job_id": "mine"}}, [1, 3, [], False, "mine"]),
        ("tagged", {"args": ["x"]}, "x:JOB"),
        ("tagged", {"args": ["x"], "kwargs": {"job_id": "mine"}}, "x:mine"),
        ("tagged", {"args": {"label": "y"}}, "y:JOB"),
    ],
)
async def test_positional_arguments_skip_the_injected_parameters(
    client: Client,
    worker: WorkerFactory,
    fn: str,
    payload_args: dict[str, Any],
    expected: Any,
) -> None:
    await worker(modules=["tests.jobs"])
    job = await client.enqueue("call", {"fn": f"tests.jobs:{fn}", **payload_args})
    result = await client.wait(job.id, timeout=10)
    assert json.loads(json.dumps(expected).replace("JOB", job.id)) == result


async def test_too_many_positional_arguments_fail_for_good(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(modules=["tests.jobs"])
    job = await client.enqueue(
        "call", {"fn": "tests.jobs:resize", "args": ["a.png", 640, 3]}, max_retries=3
    )
    with pytest.raises(JobFailed, match=r"takes 2 positional argument\(s\), got 3 \(ctx: passed"):
        await client.wait(job.id, timeout=10)
    got = await client.get(job.id)
    assert got is not None and got.attempt == 1


def test_a_worker_process_refuses_them_too(redis_url: str, tmp_path: Path) -> None:
    """`redisjobs worker --allow-module tests.jobs`, as deployed: same refusals, same marker."""
    queue = unique_queue("call-cli")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "redisjobs", "worker", "--redis", redis_url, "--queue", queue]
    worker = subprocess.Popen(
        [*cmd, "--allow-module", "tests.jobs", "--lease-ttl", "2"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(_refusals_over(redis_url, queue, tmp_path / "marker"))
    finally:
        worker.terminate()
        worker.wait(15)


async def _refusals_over(redis_url: str, queue: str, marker: Path) -> None:
    async with Client(redis_url, queue=queue) as client:
        ids = {}
        for n, fn in enumerate(REFUSED):
            ids[fn] = await enqueue_raw(client, f"refused-{n}", _payload(fn, marker))
        reasons = await _refused_reasons(client, ids)
        for fn, why in REFUSED.items():
            assert why in reasons[fn], (fn, reasons[fn])
        assert not marker.exists()
        job = await client.enqueue("call", {"fn": "tests.jobs:resize", "args": ["a.png", 640]})
        assert await client.wait(job.id, timeout=20) == {"path": "a.png", "width": 640}


def test_the_cli_refuses_a_dunder_in_one_line(redis_url: str) -> None:
    payload = '{"fn": "tests.jobs:add.__globals__"}'
    done = subprocess.run(
        [sys.executable, "-m", "redisjobs", "enqueue", "--redis", redis_url, "call", payload],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "redisjobs: function 'tests.jobs:add.__globals__' refused: '__globals__' is a dunder name\n"
    )


async def test_a_payload_naming_no_function_fails_for_good(
    client: Client, worker: WorkerFactory
) -> None:
    await worker(modules=["tests.jobs"])
    for n, payload in enumerate([{"args": [1]}, None, ["tests.jobs:add"]]):
        job = await client.enqueue("call", payload, max_retries=3)  # no "fn": stored as given
        with pytest.raises(JobFailed, match=r"function name string|a call payload is"):
            await client.wait(job.id, timeout=10)
        got = await client.get(job.id)
        assert got is not None and got.attempt == 1, n


async def test_the_fleet_example_takes_positional_arguments(
    client: Client, worker: WorkerFactory
) -> None:
    from examples.fleet.tasks import RESIZE

    await worker(modules=["examples.fleet.tasks"])
    job = await client.enqueue("call", {"fn": RESIZE, "args": [7, 320]})
    result = await client.wait(job.id, timeout=10)
    assert (result["image_id"], result["width"]) == (7, 320)


# -- injected values --------------------------------------------------------------------------


class Pool:
    """A value a worker injects (a connection pool, say): the same object in every job."""

    def __init__(self) -> None:
        self.used = 0


def with_db_first(db: Pool, label: str, ctx: Any = None) -> list[Any]:
    db.used += 1
    return [label, db.used, ctx is not None]


async def with_db_keyword(label: str, *, db: Pool, job_id: str) -> str:
    return f"{label}:{type(db).__name__}:{job_id}"


def without_db(label: str) -> str:
    return label


async def test_injected_values_reach_the_functions_that_declare_them(
    client: Client, worker: WorkerFactory
) -> None:
    pool = Pool()
    functions = {"first": with_db_first, "keyword": with_db_keyword, "plain": without_db}
    await worker(functions=functions, inject={"db": pool})
    first = await client.enqueue("call", {"fn": "first", "args": ["a"]})
    assert await client.wait(first.id, timeout=5) == ["a", 1, True]  # positional args skip db
    keyword = await client.enqueue("call", {"fn": "keyword", "args": {"label": "b"}})
    assert await client.wait(keyword.id, timeout=5) == f"b:Pool:{keyword.id}"
    plain = await client.enqueue("call", {"fn": "plain", "args": ["c"]})
    assert await client.wait(plain.id, timeout=5) == "c"
    # As for job_id, the payload's keyword argument wins over an injected value.
    given = await client.enqueue("call", {"fn": "keyword", "args": {"label": "d", "db": 1}})
    assert await client.wait(given.id, timeout=5) == f"d:int:{given.id}"
    assert pool.used == 1
    extra = await client.enqueue("call", {"fn": "first", "args": ["a", "b", "c"]}, max_retries=2)
    with pytest.raises(JobFailed, match=r"takes 1 positional argument\(s\), got 3 \(db and ctx"):
        await client.wait(extra.id, timeout=5)


@pytest.mark.parametrize("name", ["ctx", "job_id", "not an identifier"])
def test_the_worker_own_names_cannot_be_injected(name: str) -> None:
    with pytest.raises(ValueError, match=f"cannot inject {name!r}"):
        CallExecutor(inject={name: object()})
