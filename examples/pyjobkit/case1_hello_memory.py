"""Case 1: in memory with a custom executor (no database, no Redis).

Differences from Pyjobkit: the imports, and ``run(once=True)`` so the script ends when the
queue is drained (``run()`` serves until a signal or ``request_stop()``, as Pyjobkit's does).
"""

import asyncio

from redisjobs.pyjobkit import Engine, Worker
from redisjobs.pyjobkit.backends.memory import MemoryBackend
from redisjobs.pyjobkit.contracts import ExecContext, Executor


class HelloExecutor(Executor):
    kind = "hello"

    async def run(self, *, job_id, payload, ctx: ExecContext):  # type: ignore[no-untyped-def]
        name = payload.get("name", "World")
        await ctx.log(f"Привет, {name}! Задача {job_id}")
        await ctx.set_progress(100)
        return {"greeting": f"Hello, {name}!"}


async def main() -> None:
    backend = MemoryBackend()
    engine = Engine(backend=backend, executors=[HelloExecutor()])
    worker = Worker(engine, max_concurrency=2)

    job_id = await engine.enqueue(kind="hello", payload={"name": "Pyjobkit"})
    print("Задача поставлена:", job_id)

    await worker.run(once=True)
    job = await engine.get(job_id)
    print("Статус:", job["status"], job["result"])
    await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
