"""Retries: a failing job runs again, up to max_retries more times, each wait longer."""

import asyncio
import os

from redisjobs import JobManager

attempts = 0


async def unreliable_task() -> str:
    global attempts
    attempts += 1
    if attempts < 3:
        raise ConnectionError(f"upstream down (attempt {attempts})")
    return f"succeeded on attempt {attempts}"


async def main() -> None:
    manager = JobManager(
        max_workers=4,
        max_retries=3,
        retry_delay=0.2,  # seconds before the first retry (the seed uses 5.0)
        retry_backoff=2.0,  # then 0.4 s, 0.8 s, ...
        url=os.environ.get("REDIS_URL"),
    )
    job = await manager.submit(unreliable_task)
    print(await manager.wait(job.id, timeout=30))
    await manager.close()


if __name__ == "__main__":
    asyncio.run(main())
