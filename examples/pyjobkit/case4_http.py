"""Case 4: webhooks with the HTTP executor.

Differences: the webhook URL comes from ``WEBHOOK_URL`` so the script can call a real server;
the worker names the webhook's host in its allow-list, which is good practice and also lets the
host be on a private network or this machine (a worker refuses those addresses otherwise).
"""

import asyncio
import os

import httpx

from redisjobs.pyjobkit import Engine, MemoryBackend, Worker
from redisjobs.pyjobkit.executors import HTTPExecutor


async def main() -> None:
    url = os.environ.get("WEBHOOK_URL", "https://api.example.com/webhook")
    http = HTTPExecutor(allow_hosts=[httpx.URL(url).host])
    engine = Engine(backend=MemoryBackend(), executors=[http])
    job_id = await engine.enqueue(
        kind="http",
        payload={
            "url": url,
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
