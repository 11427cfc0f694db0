"""The seed's production example (Autoshorts): bound methods as the job and as handlers.

The generation steps and Telegram are stubs that only print.
"""

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from redisjobs import JobManager

admin_id = "admin"


class Telegram:
    async def send_message(self, chat: str, text: str) -> None:
        print(f"[telegram to {chat}] {text}")


telegram = Telegram()


@dataclass
class Video:
    url: str


class VideoJobManager:
    def __init__(self) -> None:
        self.manager = JobManager(max_workers=2, max_retries=2, url=os.environ.get("REDIS_URL"))
        self.manager.on_complete(self.notify_user)
        self.manager.on_failure(self.handle_failure)
        self.done = asyncio.Event()

    async def create_video(self, user_id: str, params: dict[str, Any]) -> str:
        job = await self.manager.submit(self.generate_video, args={"user_id": user_id, **params})
        return job.id

    async def generate_video(self, user_id: str, prompt: str, style: str) -> dict[str, str]:
        script = await self.generate_script(prompt)  # Step 1: Generate script
        audio = await self.generate_audio(script)  # Step 2: Generate audio
        images = await self.generate_images(script, style)  # Step 3: Generate images
        video = await self.compose_video(images, audio)  # Step 4: Compose video
        return {"video_url": video.url, "user_id": user_id}

    async def generate_script(self, prompt: str) -> str:
        await asyncio.sleep(0.05)
        return f"script about {prompt}"

    async def generate_audio(self, script: str) -> bytes:
        await asyncio.sleep(0.05)
        return script.encode()

    async def generate_images(self, script: str, style: str) -> list[str]:
        await asyncio.sleep(0.05)
        return [f"{style}-{n}.png" for n in range(3)]

    async def compose_video(self, images: list[str], audio: bytes) -> Video:
        await asyncio.sleep(0.05)
        return Video(url=f"https://cdn.example.com/{len(images)}-frames.mp4")

    async def notify_user(self, job_id: str, result: dict[str, Any]) -> None:
        await telegram.send_message(result["user_id"], f"Ваше видео готово: {result['video_url']}")
        self.done.set()

    async def handle_failure(self, job_id: str, error: Exception) -> None:
        await telegram.send_message(admin_id, f"Job {job_id} failed: {error}")
        self.done.set()


async def main() -> None:
    videos = VideoJobManager()
    job_id = await videos.create_video("user-42", {"prompt": "a cat", "style": "anime"})
    print(f"video job {job_id}")
    await asyncio.wait_for(videos.done.wait(), 30)
    await videos.manager.close()


if __name__ == "__main__":
    asyncio.run(main())
