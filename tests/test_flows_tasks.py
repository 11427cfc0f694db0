"""Flows of typed tasks (each step a task call, receiving ``previous_result``) and flows from
the sync client."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from redisjobs import App, ExecContext, Worker, chain, chord, group
from redisjobs.sync import Client as SyncClient

app = App()


@app.task
async def script(prompt: str) -> str:
    return f"script of {prompt}"


@app.task
async def audio(previous_result: str = "") -> dict[str, str]:
    return {"script": previous_result, "audio": f"voice({previous_result})"}


@app.task
async def compose(previous_result: dict[str, str] | None = None, style: str = "plain") -> str:
    assert previous_result is not None
    return f"{style} video with {previous_result['audio']}"


@app.task
async def square(n: int) -> int:
    return n * n


@app.task
async def summed(ctx: ExecContext) -> int:
    return sum((await ctx.children_results()).values())


@app.task
async def plus_one(previous_result: int = 0) -> int:
    return previous_result + 1


@app.task
async def needs_previous(previous_result: int) -> int:
    return -previous_result


@app.task
async def takes_nothing_more(x: int) -> int:
    return x


async def test_a_chain_of_tasks_passes_results_as_previous_result(url: str, queue: str) -> None:
    app.url = url
    try:
        async with Worker(url, queue=queue, app=app, handle_signals=False):
            client = app.client()
            run = await client.enqueue_flow(
                chain(
                    script.options(queue=queue).call("a cat"),
                    audio.options(queue=queue).call(),
                    compose.options(queue=queue).call(style="noir"),
                )
            )
            assert await client.wait(run.id, queue=queue, timeout=10) == (
                "noir video with voice(script of a cat)"
            )
            # a step may leave out a previous_result it requires (untyped: a type checker asks
            # for it, so typed code gives it a default): the chain passes it
            needs = needs_previous.options(queue=queue).call()  # type: ignore[call-arg]
            odd = chain(square.options(queue=queue).call(4), needs)
            assert (
                await client.wait((await client.enqueue_flow(odd)).id, queue=queue, timeout=10)
                == -16
            )
            first = await square.options(queue=queue).enqueue(6)
            after = await plus_one.options(queue=queue, depends_on=[first]).enqueue(1)
            assert await after.result(timeout=10) == 2  # it ran after, with its own argument
            assert (await client.get(after.id, queue=queue)).depends_on == (first.id,)  # type: ignore[union-attr]
            fan = chord(
                group(square.options(queue=queue).call(i) for i in range(5)),
                summed.options(queue=queue).call(),
            )
            done = await client.enqueue_flow(fan)
            assert await client.wait(done.id, queue=queue, timeout=10) == 30
    finally:
        await app.aclose()


def test_a_task_that_cannot_take_the_previous_result_is_refused(queue: str) -> None:
    client = SyncClient("memory://flows-refused", queue=queue)
    with pytest.raises(TypeError, match=r"takes_nothing_more .* 'previous_result'"):
        client.enqueue_flow(chain(square.call(2), takes_nothing_more.call(3)))
    assert client.list_jobs().jobs == []


def test_the_sync_client_writes_waits_on_and_cancels_flows(redis_url: str, queue: str) -> None:
    app.url = redis_url
    client = SyncClient(redis_url, queue=queue)
    steps: list[Any] = [square.options(queue=queue).call(3), plus_one.options(queue=queue).call()]
    run = client.enqueue_flow(chain(*steps))
    tree = client.flow_tree(run.id)
    assert tree is not None and [n.id for n in tree.nodes()] == [run.id, run.jobs[0].id]
    assert client.get(run.jobs[0].id).dependents == (run.id,)  # type: ignore[union-attr]
    assert client.cancel_flow(run.id) == 2
    assert [client.get(j.id).status for j in run.jobs] == ["cancelled", "cancelled"]  # type: ignore[union-attr]
    again = client.enqueue_flow(chain(*steps))
    stop = threading.Event()

    def serve() -> None:
        async def main() -> None:
            async with Worker(redis_url, queue=queue, app=app, handle_signals=False):
                while not stop.is_set():
                    await asyncio.sleep(0.02)

        asyncio.run(main())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert client.wait(again.id, timeout=10) == 10
    finally:
        stop.set()
        thread.join(10)
        client.close()
