"""cancel_and_wait ends tasks that a single cancel does not end."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from redisjobs.cancelling import cancel_and_wait


async def _swallows_one_cancel(started: asyncio.Event) -> None:
    """What Python 3.11's wait_for does when a cancel meets a completion: carry on."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)


async def test_a_task_that_swallows_a_cancel_is_cancelled_again() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_swallows_one_cancel(started))
    await started.wait()
    async with asyncio.timeout(2):
        await cancel_and_wait([task])
    assert task.cancelled()


async def test_a_wait_for_whose_operation_completes_as_it_is_cancelled() -> None:
    """The race itself, as redis-py meets it: the reply arrives, then the cancel."""
    reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    commands = 0

    async def client() -> None:
        nonlocal commands
        while True:
            commands += 1
            await asyncio.wait_for(reply if commands == 1 else asyncio.sleep(3600), 10)

    task = asyncio.create_task(client())
    await asyncio.sleep(0)
    reply.set_result(None)
    async with asyncio.timeout(2):
        await cancel_and_wait([task])
    assert task.cancelled()


async def test_errors_are_collected_and_finished_tasks_left_alone() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    failed, done = asyncio.create_task(fails()), asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait([failed, done])  # no "exception was never retrieved" either
    assert isinstance(failed.exception(), ValueError) and done.done() and not done.cancelled()


async def test_cancelled_while_waiting_it_still_ends_its_tasks_first() -> None:
    started = asyncio.Event()
    child = asyncio.create_task(_swallows_one_cancel(started))
    await started.wait()

    async def owner() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await cancel_and_wait([child])

    task = asyncio.create_task(owner())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # the owner is cancelled again while it waits for its child
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2):
            await task
    assert child.cancelled()
