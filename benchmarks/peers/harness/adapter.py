"""The interface every library's adapter implements, on that library's documented API."""

from __future__ import annotations

import abc
import asyncio
import importlib.metadata
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.probes import run
from harness.sizes import INFLIGHT


class Unsupported(Exception):
    """The library has no API for this workload; the message says why (it becomes a footnote)."""


class Adapter(abc.ABC):
    """One library's side of the benchmark, on its documented API.

    Subclasses set :attr:`name`, :attr:`packages` and :attr:`notes` and implement the abstract
    methods. Jobs are named ``"noop"`` (returns at once) and ``"sleep10"`` (``asyncio.sleep``
    10 ms, or ``time.sleep`` for a synchronous library).
    """

    name: str = "?"
    packages: tuple[str, ...] = ()
    """Distributions whose installed versions are reported."""
    notes: tuple[str, ...] = ()
    """How the library is configured and called (printed under the table)."""

    async def open(self, url: str) -> None:
        """Connect the producer side (in the driver process)."""
        self.url = url

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the producer side's connections."""

    @abc.abstractmethod
    async def enqueue(self, queue: str, fn: str) -> Any:
        """Enqueue one job calling `fn` on `queue`; return a handle :meth:`wait` accepts."""

    async def enqueue_inflight(self, queue: str, fn: str, n: int, inflight: int) -> None:
        """Enqueue `n` jobs with `inflight` enqueue calls outstanding at any time."""

        async def lane(count: int) -> None:
            for _ in range(count):
                await self.enqueue(queue, fn)

        await asyncio.gather(*(lane(c) for c in split(n, inflight)))

    async def enqueue_bulk(self, queue: str, fn: str, n: int) -> None:
        """Enqueue `n` jobs through the library's own bulk API."""
        raise Unsupported(f"{self.name} has no bulk enqueue API")

    def enqueue_sync(self, queue: str, fn: str) -> Any:
        """Enqueue one job from sync code, through the library's synchronous producer API.

        Called in a thread of its own, never in the event loop's: a library without such an
        API has no way here but running an event loop per call, which is not its API.
        """
        raise Unsupported(f"{self.name} has no synchronous enqueue API (its enqueue is async)")

    def enqueue_threads(self, queue: str, fn: str, n: int, threads: int) -> None:
        """Enqueue `n` jobs through :meth:`enqueue_sync` from `threads` threads sharing this
        adapter's producer (its connection pool or client)."""

        def lane(count: int) -> None:
            for _ in range(count):
                self.enqueue_sync(queue, fn)

        with ThreadPoolExecutor(threads) as pool:
            for f in [pool.submit(lane, c) for c in split(n, threads)]:
                f.result()

    @abc.abstractmethod
    async def wait(self, queue: str, handle: Any, timeout: float) -> None:
        """Wait for the job behind `handle` through the library's documented wait."""

    async def roundtrip(self, queue: str, fn: str, timeout: float) -> None:
        """Enqueue one job and wait for its result (overridden where the wait needs set-up)."""
        await self.wait(queue, await self.enqueue(queue, fn), timeout)

    @abc.abstractmethod
    async def completed(self, queue: str, n: int) -> int:
        """How many of the `n` jobs enqueued into `queue` have completed, by the library."""

    async def serve(self, url: str, queue: str, concurrency: int) -> None:
        """Worker-process body: run the library's worker on `queue` until SIGTERM."""
        raise NotImplementedError

    def serve_blocking(self, url: str, queue: str, concurrency: int) -> None:
        """Run :meth:`serve` on uvloop (a synchronous library overrides this instead)."""
        run(self.serve(url, queue, concurrency))

    def versions(self) -> dict[str, str]:
        """Installed versions of :attr:`packages` (``-`` when not installed)."""
        out: dict[str, str] = {}
        for dist in self.packages:
            try:
                out[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                out[dist] = "-"
        return out

    async def prefill(self, queue: str, fn: str, n: int) -> str:
        """Enqueue `n` jobs as fast as the library allows; returns the method used."""
        try:
            await self.enqueue_bulk(queue, fn, n)
        except Unsupported:
            await self.enqueue_inflight(queue, fn, n, INFLIGHT)
            return f"{INFLIGHT} in flight"
        return "bulk"


def group_completed(groups: list[dict[Any, Any]], group: str) -> int:
    """Jobs a consumer group finished, from its stream's ``XINFO GROUPS`` reply (redis-py's
    dicts): entries it read minus those still pending (acknowledged once done); 0 without it."""
    for info in groups:
        if info["name"] in (group, group.encode()):
            return int(info.get("entries-read") or 0) - int(info["pending"])
    return 0


def split(n: int, lanes: int) -> list[int]:
    """`n` jobs shared as evenly as possible among at most `lanes` lanes (none empty)."""
    lanes = max(1, min(lanes, n))
    return [n // lanes + (1 if i < n % lanes else 0) for i in range(lanes)]


def ceil_seconds(timeout: float) -> int:
    """`timeout` rounded up to whole seconds, for APIs that take an int."""
    return max(1, math.ceil(timeout))
