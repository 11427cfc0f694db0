"""An App for the task tests, importable by worker subprocesses (``tests.tasks_app:app``).

Its queue is set per test (``APP_QUEUE`` in the environment of a worker subprocess; tests in
this process route with ``task.options(queue=...)`` or a Worker's ``queue``).
"""

from __future__ import annotations

import os

from redisjobs import App, ExecContext

app = App(queue=os.environ.get("APP_QUEUE", "default"))


@app.task(retries=2, retry_delay=0.05)
async def resize(ctx: ExecContext, path: str, width: int) -> dict[str, object]:
    await ctx.log(f"resizing {path}")
    await ctx.set_progress(50, "half")
    return {"path": path, "width": width, "attempt": ctx.attempt}


@app.task
def area(width: int, height: int = 2) -> int:
    return width * height


@app.task(name="custom.name")
async def named(ctx: ExecContext, text: str = "") -> str:
    return f"{ctx.job_id}:{text}"


@app.task(retries=1, retry_delay=0.05)
async def boom(message: str) -> None:
    raise RuntimeError(message)


def helper() -> str:
    """Not a task: a worker of the app must refuse it."""
    return "should not run"
