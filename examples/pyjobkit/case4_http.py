"""Case 4: webhooks with the HTTP executor.

Difference: the webhook URL comes from ``WEBHOOK_URL`` so the script can call a real server.
"""

import asyncio
import os

from redisjobs.engine import Engine, MemoryBackend, Worker
from redisjobs.executors import HTTPExecutor


async def main() -> None:
    engine = Engine(backend=MemoryBackend(), executors=[HTTPExecutor()])
    job_id = await engine.enqueue(
        kind="http",
        payload={
            "url": os.environ.get("WEBHOOK_URL", "https://api.example.com/webhook"),
            "method": "POST",
            "body": {"data": "test"},
        },
    )
    await Worker(engine, max_concurrency=8).run(once=True)
    job = await engine.get(job_id)
    print("Статус:", job["status"], job["result"] and job["result"]["status"])
    await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
