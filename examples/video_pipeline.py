"""The seed's Autoshorts pipeline as a flow: one task per step, each a job of its own.

generate_script -> generate_audio -> generate_images (on the "gpu" queue) -> compose_video ->
three thumbnails side by side -> publish (their fan-in) -> notify_user. Each step after another
receives that step's result as ``previous_result``; ``publish`` reads the thumbnails' results
with ``ctx.children_results()``. The generation steps only pretend (they build strings).

Runs on the embedded backend (``memory://``) with an in-process worker unless ``REDIS_URL``
names a Redis::

    python examples/video_pipeline.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from redisjobs import App, ExecContext, Worker, chain, chord, group
from redisjobs.composition import Chain

app = App(os.environ.get("REDIS_URL", "memory://autoshorts"))
Draft = dict[str, Any]
"""What each step adds to and hands to the next."""


@app.task
async def generate_script(prompt: str, style: str) -> Draft:
    """Step 1: the script of the video."""
    return {"script": f"60 seconds about {prompt}", "style": style}


@app.task
async def generate_audio(previous_result: Draft | None = None) -> Draft:
    """Step 2: the voice-over of the script."""
    draft = previous_result or {}
    return {**draft, "audio": f"voice of {draft['script']!r}.mp3"}


@app.task(queue="gpu")  # runs where the GPUs are: the workers that serve "gpu"
async def generate_images(previous_result: Draft | None = None) -> Draft:
    """Step 3: one image per scene, in the script's style."""
    draft = previous_result or {}
    return {**draft, "images": [f"{draft['style']}-{n}.png" for n in range(3)]}


@app.task
async def compose_video(previous_result: Draft | None = None) -> Draft:
    """Step 4: the video, from the images and the audio."""
    draft = previous_result or {}
    return {**draft, "video_url": f"https://cdn.example.com/{len(draft['images'])}-frames.mp4"}


@app.task
async def thumbnail(at: int, previous_result: Draft | None = None) -> Draft:
    """A still of the video at second `at` (three run side by side)."""
    video = (previous_result or {})["video_url"]
    return {"video_url": video, "thumbnail": video.replace(".mp4", f"-{at}s.jpg")}


@app.task
async def publish(ctx: ExecContext) -> Draft:
    """The thumbnails' fan-in: the video with every still, read from the jobs it waited for."""
    stills = list((await ctx.children_results()).values())  # {ref: result}
    return {"video_url": stills[0]["video_url"], "thumbnails": [s["thumbnail"] for s in stills]}


@app.task
async def notify_user(user_id: str, previous_result: Draft | None = None) -> str:
    """The last step: tell the user (the seed's Telegram message, printed here)."""
    video = previous_result or {}
    text = f"Ваше видео готово: {video['video_url']}"
    print(f"[telegram to {user_id}] {text} ({len(video['thumbnails'])} thumbnails)")
    return text


def pipeline(user_id: str, prompt: str, style: str) -> Chain:
    """The whole pipeline for one video, as one flow."""
    return chain(
        generate_script.call(prompt, style),
        generate_audio.call(),
        generate_images.call(),
        compose_video.call(),
        chord(group(thumbnail.call(at) for at in (1, 5, 9)), publish.call()),
        notify_user.call(user_id),
    )


async def main() -> None:
    """One video through the pipeline, with a worker serving both queues in this process."""
    async with Worker(app=app, handle_signals=False):  # serves "default" and "gpu"
        client = app.client()
        run = await client.enqueue_flow(pipeline("user-42", "a cat", style="anime"))
        print(f"flow {run.id}: {len(run.jobs)} jobs on {sorted({j.queue for j in run.jobs})}")
        print(await client.wait(run.id, queue=run.queue, timeout=30))
        tree = await client.flow_tree(run.id, queue=run.queue)
        assert tree is not None
        for depth, node in tree.root.walk():
            name = node.job.payload["fn"].split(":")[-1] if node.job else "?"
            print(f"{'  ' * depth}{node.queue}/{name}: {node.job.status if node.job else 'gone'}")
    await app.aclose()


if __name__ == "__main__":
    asyncio.run(main())
