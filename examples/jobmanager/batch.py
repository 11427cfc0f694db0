"""Batch processing: submit every item, then wait for each result (errors kept per item)."""

import asyncio
import os
from typing import Any

from redisjobs import JobManager


class BatchProcessor:
    def __init__(self) -> None:
        self.manager = JobManager(max_workers=8, url=os.environ.get("REDIS_URL"))

    async def process_item(self, sku: str, qty: int) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        if qty < 0:
            raise ValueError(f"negative quantity for {sku}")
        return {"sku": sku, "total": qty * 10}

    async def process_batch(self, items: list[dict[str, Any]]) -> list[Any]:
        jobs = []  # Submit them all
        for item in items:
            job = await self.manager.submit(self.process_item, args=item)
            jobs.append(job.id)

        results = []  # Wait for each
        for job_id in jobs:
            try:
                result = await self.manager.wait(job_id, timeout=600)
                results.append(result)
            except Exception as e:
                results.append({"error": str(e)})
        return results


async def main() -> None:
    processor = BatchProcessor()
    items = [{"sku": f"sku-{n}", "qty": n if n != 3 else -1} for n in range(16)]
    for result in await processor.process_batch(items):
        print(result)
    await processor.manager.close()


if __name__ == "__main__":
    asyncio.run(main())
