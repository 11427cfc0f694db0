"""taskiq (https://taskiq-python.github.io) + taskiq-redis's stream broker, on its documented API.

Broker: ``RedisStreamBroker`` (consumer groups, acknowledgements) with a
``RedisAsyncResultBackend`` so results can be awaited; one broker per queue name, started with
``broker.startup()`` before the first ``kiq`` (that declares the consumer group, so pre-filled
messages are delivered). Producer: ``task.kiq()``; taskiq has no bulk kick. Wait:
``TaskiqTask.wait_result(check_interval=, timeout=)``, which polls the result backend; the
interval is set to 1 ms (default 0.2 s). Worker: ``taskiq.api.run_receiver_task(broker,
max_async_tasks=100)``, the documented programmatic form of ``taskiq worker`` for one process
(the CLI adds a process manager around the same receiver).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from harness import Adapter, Unsupported, group_completed, main
from redis.asyncio import Redis
from taskiq.api import run_receiver_task
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

CHECK_INTERVAL = 0.001
GROUP = "taskiq"  # RedisStreamBroker's default consumer_group_name


async def noop() -> None:
    return None


async def sleep10() -> None:
    await asyncio.sleep(0.01)


def make_broker(url: str, queue: str) -> RedisStreamBroker:
    """A stream broker on `queue` with a Redis result backend and both tasks registered."""
    backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(url, result_ex_time=3600)
    broker = RedisStreamBroker(url, queue_name=queue).with_result_backend(backend)
    broker.register_task(noop, task_name="noop")
    broker.register_task(sleep10, task_name="sleep10")
    return broker


class TaskiqAdapter(Adapter):
    name = "taskiq"
    packages = ("taskiq", "taskiq-redis", "redis", "hiredis", "uvloop")
    notes = (
        "`RedisStreamBroker` + `RedisAsyncResultBackend`; `taskiq.api.run_receiver_task("
        "max_async_tasks=100)` (the receiver `taskiq worker` runs, without its process manager); "
        "`kiq()`; `wait_result(check_interval=0.001)` (it polls; default 0.2 s); completed = "
        "the consumer group's `entries-read` minus `pending` (XINFO GROUPS; acknowledged after "
        "the result is saved).",
    )

    async def open(self, url: str) -> None:
        await super().open(url)
        self.brokers: dict[str, RedisStreamBroker] = {}
        self.redis: Redis = Redis.from_url(url)

    async def broker(self, queue: str) -> RedisStreamBroker:
        if queue not in self.brokers:
            broker = make_broker(self.url, queue)
            await broker.startup()
            self.brokers[queue] = broker
        return self.brokers[queue]

    async def close(self) -> None:
        for b in self.brokers.values():
            await b.shutdown()
        await self.redis.aclose()

    async def enqueue(self, queue: str, fn: str) -> Any:
        task = (await self.broker(queue)).find_task(fn)
        assert task is not None
        return await task.kiq()

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        raise Unsupported("taskiq has no bulk kick API (only `kiq()` per task)")

    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        result = await handle.wait_result(check_interval=CHECK_INTERVAL, timeout=timeout)
        if result.is_err:
            raise RuntimeError(f"task failed: {result.error!r}")

    async def completed(self, queue: str, n: int) -> int:
        await self.broker(queue)  # the group exists before the first poll
        return group_completed(await self.redis.xinfo_groups(queue), GROUP)

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        broker = make_broker(url, queue)
        await run_receiver_task(broker, max_async_tasks=concurrency, run_startup=True)


if __name__ == "__main__":
    sys.exit(main(TaskiqAdapter(), "adapters.taskiq"))
