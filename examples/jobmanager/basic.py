"""Basic usage: submit a job, read its status, wait for the result (with a timeout too).

Run: ``python examples/jobmanager/basic.py`` (embedded; set ``REDIS_URL`` to use Redis).
"""

import asyncio
import os

from redisjobs import JobManager


async def heavy_processing(video_path: str) -> None:
    await asyncio.sleep(0.2)  # stands in for the real work


async def process_video(video_path: str, output_path: str) -> dict[str, str]:
    await heavy_processing(video_path)
    return {"output": output_path}


async def main() -> None:
    manager = JobManager(max_workers=4, url=os.environ.get("REDIS_URL"))
    job = await manager.submit(
        process_video, args={"video_path": "input.mp4", "output_path": "output.mp4"}
    )
    print(f"Job ID: {job.id}")
    print(f"Status: {job.status}")  # pending

    result = await manager.wait(job.id)
    print(result)  # {"output": "output.mp4"}

    slow = await manager.submit(process_video, args={"video_path": "a", "output_path": "b"})
    try:
        result = await manager.wait(slow.id, timeout=0.01)
    except TimeoutError:
        print("Job timed out")
    await manager.close()


if __name__ == "__main__":
    asyncio.run(main())
