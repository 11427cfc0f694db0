"""Callbacks: handlers run in this process when a job submitted here completes or fails."""

import asyncio
import os
from typing import Any

from redisjobs import JobManager

manager = JobManager(max_workers=4, url=os.environ.get("REDIS_URL"))
finished = asyncio.Queue[str]()


async def notify_admin(job_id: str, error: Exception) -> None:
    print(f"admin notified about {job_id}")


@manager.on_complete
async def handle_complete(job_id: str, result: dict[str, Any]) -> None:
    print(f"Job {job_id} completed: {result}")
    finished.put_nowait(job_id)


@manager.on_failure
async def handle_failure(job_id: str, error: Exception) -> None:
    print(f"Job {job_id} failed: {error}")
    await notify_admin(job_id, error)
    finished.put_nowait(job_id)


async def resize(width: int) -> dict[str, int]:
    if width <= 0:
        raise ValueError(f"bad width {width}")
    return {"width": width}


async def main() -> None:
    await manager.submit(resize, args={"width": 640})
    await manager.submit(resize, args={"width": -1})
    for _ in range(2):
        await asyncio.wait_for(finished.get(), 10)
    await manager.close()


if __name__ == "__main__":
    asyncio.run(main())
