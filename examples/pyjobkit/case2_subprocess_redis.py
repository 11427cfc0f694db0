"""Case 2: a shell command through a shared backend (Redis here, where Pyjobkit used SQL).

Differences: ``RedisBackend(url)`` replaces ``SQLBackend(sql_engine)`` (no schema to create);
the seed's ``cmd`` is a shell string, which runs only where the executor allows a shell
(``allow_shell=True``; a list such as ``["echo", "hi"]`` runs without one); ``run(once=True)``
ends the script when the job is done.
"""

import asyncio
import os

from redisjobs.pyjobkit import Engine, Worker
from redisjobs.pyjobkit.backends.redis import RedisBackend
from redisjobs.pyjobkit.executors import SubprocessExecutor


async def main() -> None:
    backend = RedisBackend(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    engine = Engine(backend=backend, executors=[SubprocessExecutor(allow_shell=True)])
    worker = Worker(engine, max_concurrency=4)

    job_id = await engine.enqueue(
        kind="subprocess", payload={"cmd": "echo 'Hello from bash' && sleep 1"}
    )
    print("Задача поставлена:", job_id)

    await worker.run(once=True)
    job = await engine.get(job_id)
    print("Статус:", job["status"], repr(job["result"]["stdout"]))
    await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
