"""Enqueueing a task's calls: the payload a call makes, the options its job gets (the task's,
an enqueue's, the limit key its task declares), and the job handles that come back.

:class:`~redisjobs.task.Task` and :class:`~redisjobs.task.BoundTask` call these with their
options.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .handles import SyncTaskJob, TaskJob
from .job import Job

if TYPE_CHECKING:
    from .producing import JobSpec
    from .task import Task, TaskCall

R = TypeVar("R")


def as_sent(job: Job, payload: dict[str, Any]) -> Job:
    """`job` as written, with the kind and payload sent (a new job's snapshot has neither: no
    read-back), so that its `name` and `call_text` read as the task's."""
    if job.payload is None:
        job.kind, job.payload = "call", payload
    return job


def split(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Enqueue `options` as their queue and the rest (a job spec's options)."""
    queue = options.pop("queue")
    return queue, options


def keyed(
    task: Task[Any, Any], options: Mapping[str, Any], args: Any, kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """`options` with the job's limit key, when its task declares one and the enqueue does not."""
    if task.limit is None or options.get("limit_key") is not None:
        return dict(options)
    return {**options, "limit_key": task.limit.key(args, kwargs)}


async def enqueue(
    task: Task[Any, R], options: Mapping[str, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> TaskJob[R]:
    """Enqueue one call of `task` with `options` through the App's async client."""
    payload = task.payload(args, kwargs)
    client = task.app.client()
    job = await client.enqueue("call", payload, **keyed(task, options, args, kwargs))
    return TaskJob(as_sent(job, payload), client)


def enqueue_sync(
    task: Task[Any, R], options: Mapping[str, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> SyncTaskJob[R]:
    """:func:`enqueue` through the App's sync client."""
    payload = task.payload(args, kwargs)
    client = task.app.sync_client()
    job = client.enqueue("call", payload, **keyed(task, options, args, kwargs))
    return SyncTaskJob(as_sent(job, payload), client)


async def enqueue_many(
    task: Task[Any, R], options: Mapping[str, Any], calls: Iterable[TaskCall[R] | tuple[Any, ...]]
) -> list[TaskJob[R]]:
    """Enqueue many calls (of `task`, or :class:`~redisjobs.task.TaskCall` of any task) in
    order, one ``enqueue_many`` per queue they go to."""
    if options.get("job_id") is not None:
        raise TypeError("enqueue_many cannot give one job_id to many jobs")
    # Calls of other tasks go to their own queues: one enqueue_many per queue, order kept.
    by_queue: dict[str, list[tuple[int, JobSpec, dict[str, Any]]]] = {}
    # The options of every call of `task` itself, unless a limit key makes them per call
    own = None if task.limit is not None else split(keyed(task, options, (), {}))
    total = 0
    for total, call in enumerate(calls, 1):
        kwargs: Mapping[str, Any] = {}
        if isinstance(call, tuple):
            of, args = task, call
        else:
            of, args, kwargs = call.task, call.args, call.kwargs
        payload = of.payload(args, kwargs)
        queue, opts = (
            own
            if own is not None and of is task
            else split(keyed(of, options if of is task else of._options, args, kwargs))
        )
        spec: JobSpec = {"kind": "call", "payload": payload, **opts} if opts else ("call", payload)
        by_queue.setdefault(queue, []).append((total - 1, spec, payload))
    client = task.app.client()
    out: list[Any] = [None] * total
    for queue, specs in by_queue.items():
        jobs = await client.enqueue_many([spec for _, spec, _ in specs], queue=queue)
        for (at, _, payload), job in zip(specs, jobs, strict=True):
            out[at] = TaskJob(as_sent(job, payload), client)
    return out
