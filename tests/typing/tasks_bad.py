"""Not type-checked with the tests: tests/test_task_types.py runs mypy on it and expects an
error on each line marked ``# error``, and on no other line."""

from __future__ import annotations

from redisjobs import App, ExecContext

app = App("memory://typing")


@app.task
async def resize(ctx: ExecContext, path: str, width: int) -> dict[str, int]:
    return {"width": width}


@app.task
def add(a: int, b: int = 1) -> int:
    return a + b


async def producer() -> None:
    await resize.enqueue("a.png", "640")  # error: wrong argument type
    await resize.enqueue("a.png")  # error: missing argument
    await resize.enqueue("a.png", 640, height=3)  # error: unknown keyword
    await resize.enqueue(ctx=None, path="a.png", width=1)  # error: ctx is the worker's
    job = await resize.enqueue("a.png", 640)
    text: str = await job.result()  # error: the result is a dict
    print(text)
    add.enqueue_sync("1")  # error: wrong argument type
    add.call(1, 2, 3)  # error: too many arguments
    resize.options(delay=1).enqueue_sync(1, 2)  # error: wrong argument type
    n: str = add(1)  # error: add returns an int
    print(n)
    await resize.enqueue_many([("a.png", 1)])
