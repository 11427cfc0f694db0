"""Progress: the job reports it through the manager; anyone reads it by job id."""

import asyncio
import os

from redisjobs import JobManager


async def process_item(item: int) -> None:
    await asyncio.sleep(0.01)


async def process_with_progress(
    data: list[int], job_id: str, manager: JobManager
) -> dict[str, int]:
    total = len(data)
    for i, item in enumerate(data):
        await process_item(item)
        await manager.update_progress(job_id, (i + 1) / total * 100)
    return {"processed": total}


async def main() -> None:
    async with JobManager(max_workers=4, url=os.environ.get("REDIS_URL")) as manager:
        job = await manager.submit(process_with_progress, args={"data": list(range(50))})
        await asyncio.sleep(0.2)
        progress = await manager.get_progress(job.id)
        print(f"Progress: {progress:.0f}%")
        print(await manager.wait(job.id))
        print(f"Progress: {await manager.get_progress(job.id):.0f}%")


if __name__ == "__main__":
    asyncio.run(main())
