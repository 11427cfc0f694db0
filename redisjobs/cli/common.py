"""What the commands share: connecting, finding a job's queue, stopping on signals."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from ..client import Client
from ..connection import Backend
from ..errors import JobNotFound
from ..job import Job, JobStatus
from .render import print_json

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class UsageError(Exception):
    """A bad argument found after parsing (exit status 2, like argparse's own errors)."""


def redis_url(given: str | None, command: str, *, private_ok: bool = False) -> str:
    """The URL a command that talks to a shared Redis uses: `given`, else ``$REDIS_URL``.

    Args:
        given: the command's ``--redis``.
        command: its name, for the error.
        private_ok: an explicit ``memory://`` is allowed (a worker serving its own process).

    Raises:
        UsageError: no URL at all, or (unless `private_ok`) one of the embedded backend, which
            lives inside one process, so another process could never see what this command
            reads or writes.
    """
    url = given or os.environ.get("REDIS_URL")
    hint = " (or --redis memory:// for a store private to this process)" if private_ok else ""
    if not url:
        raise UsageError(f"{command} needs a Redis server: pass --redis URL or set REDIS_URL{hint}")
    if Backend(url).embedded and not private_ok:
        raise UsageError(
            f"{command} needs a Redis server: pass --redis URL or set REDIS_URL "
            f"({url} exists only inside one process)"
        )
    return url


@contextlib.asynccontextmanager
async def connect(given: str | None, command: str, queue: str = "default") -> AsyncIterator[Client]:
    """A connected Client of the command's Redis.

    ConnectionFailed (naming the URL) when Redis is unreachable or stops answering.
    """
    async with Client(redis_url(given, command), queue=queue) as client:
        with client.backend.reaching():
            yield client


async def find_job(client: Client, job_id: str, queue: str | None) -> Job:
    """The job `job_id` of `queue`, or of whichever known queue holds it when `queue` is None.

    Raises:
        JobNotFound: no such job (never enqueued, or expired after its result_ttl).
    """
    job = await client.find_job(job_id, queue=queue)
    if job is None:
        where = f"queue {queue!r}" if queue else "any queue"
        raise JobNotFound(f"no job {job_id!r} in {where}")
    return job


async def change_job(
    args: argparse.Namespace, change: Callable[..., Awaitable[bool]], done: str
) -> tuple[Job, bool, JobStatus]:
    """Find the job ``args.job_id`` (as :func:`find_job`), `change` it, and read its status after;
    with ``--json``, print ``{"id", "queue", <done>: changed, "status"}``.

    Args:
        args: the command's arguments (``redis``, ``command``, ``job_id``, ``queue``, ``json``).
        change: a method of Client that takes a job id and ``queue=`` (``Client.cancel``).
        done: the document's name for what `change` returned.

    Returns:
        The job as found, whether `change` did anything, and the job's status after it.
    """
    async with connect(args.redis, args.command) as client:
        job = await find_job(client, args.job_id, args.queue)
        changed = await change(client, job.id, queue=job.queue)
        after = await client.get(job.id, queue=job.queue)
    now = after.status if after is not None else job.status
    if args.json:
        print_json({"id": job.id, "queue": job.queue, done: changed, "status": now})
    return job, changed, now


def on_stop_signals(callback: Callable[[signal.Signals], None]) -> None:
    """Call `callback` on each SIGTERM or SIGINT instead of dying (on the running loop)."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, callback, sig)


async def until_stop_signal(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it ends or SIGTERM/SIGINT arrives (then cancel it and return)."""
    stopped = asyncio.Event()
    on_stop_signals(lambda _sig: stopped.set())
    task = asyncio.create_task(work)
    stop = asyncio.create_task(stopped.wait())
    await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if task.done():
        task.result()  # an error of `work` is the command's error
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def import_ref(ref: str) -> Any:
    """The object a ``module:attr`` reference names (``attr`` may be dotted)."""
    module, sep, name = ref.partition(":")
    if not sep or not module or not name:
        raise UsageError(f"{ref!r} is not a module:attr reference")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot import {ref}: {exc}") from None
    return obj


def import_module(name: str) -> None:
    """Import `name` now, so that a typo fails the command instead of every job later."""
    try:
        importlib.import_module(name)
    except ImportError as exc:
        raise UsageError(f"cannot import module {name}: {exc}") from None
