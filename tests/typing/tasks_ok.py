"""Checked by mypy (strict) with the rest of the tests: what the task API's types promise."""

from __future__ import annotations

from typing import assert_type

from redisjobs import App, AsyncTask, ExecContext, SyncTask, SyncTaskJob, TaskCall, TaskJob

app = App("memory://typing")


@app.task(retries=3, timeout=60, queue="images")
async def resize(ctx: ExecContext, path: str, width: int) -> dict[str, int]:
    await ctx.log(path)
    return {"width": width}


@app.task
async def no_ctx(path: str, *, scale: float = 1.0) -> str:
    return path


@app.task(isolation="process")
def add(a: int, b: int = 1) -> int:
    return a + b


@app.task
def with_ctx(ctx: ExecContext, n: int) -> list[int]:
    return [n]


_resize: AsyncTask[..., dict[str, int]] = resize  # a coroutine function makes an AsyncTask
_add: SyncTask[..., int] = add  # a plain one a SyncTask


async def producer() -> None:
    job = await resize.enqueue("a.png", width=640)
    assert_type(job, TaskJob[dict[str, int]])
    out = await job.result(timeout=30)
    assert_type(out, dict[str, int])
    bound = resize.options(delay=5, job_id="img-42", priority=10)
    assert_type(await bound.enqueue("b.png", 320), TaskJob[dict[str, int]])
    jobs = await resize.enqueue_many([("a.png", 1), resize.call("b.png", width=2)])
    assert_type(jobs, list[TaskJob[dict[str, int]]])
    assert_type(resize.call("a.png", 1), TaskCall[dict[str, int]])
    assert_type(await resize("a.png", 640), dict[str, int])
    assert_type(await no_ctx("p", scale=2.0), str)
    assert_type(await (await no_ctx.enqueue("p")).result(), str)
    assert_type(add(1, 2), int)
    assert_type(with_ctx(3), list[int])
    assert_type(await (await add.enqueue(1)).result(), int)


def sync_producer() -> None:
    job = resize.enqueue_sync("c.png", 640)
    assert_type(job, SyncTaskJob[dict[str, int]])
    assert_type(job.result(timeout=5), dict[str, int])
    assert_type(add.enqueue_sync(1, b=2).result(), int)
