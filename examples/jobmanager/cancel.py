"""Cancelling: a running job is interrupted by its worker and ends cancelled."""

import asyncio
import os

from redisjobs import JobManager, JobStatus


async def long_task() -> None:
    await asyncio.sleep(3600)


async def main() -> None:
    async with JobManager(max_workers=4, url=os.environ.get("REDIS_URL")) as manager:
        job = await manager.submit(long_task)
        while (await manager.get(job.id)).status != JobStatus.RUNNING:  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        await manager.cancel(job.id)

        job = await manager.get(job.id)  # type: ignore[assignment]
        print(job.status)  # JobStatus.CANCELLED


if __name__ == "__main__":
    asyncio.run(main())
