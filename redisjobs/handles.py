"""What enqueueing a task returns: the job's id, and its result, typed, once it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

from .job import Job, JobStatus

if TYPE_CHECKING:
    from .client import Client
    from .sync import Client as SyncClient

R = TypeVar("R")


class TaskJob(Generic[R]):
    """A job of a task, as enqueued from async code: its id, and its result when it ends.

    Attributes:
        id: the job's id.
        queue: its queue.
        job: the job as written at enqueue (a snapshot; :meth:`get` reads it again).
    """

    __slots__ = ("_client", "id", "job", "queue")

    def __init__(self, job: Job, client: Client) -> None:
        self.id, self.queue, self.job = job.id, job.queue, job
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} on {self.queue!r}>"

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the job to end and return what the function returned.

        Raises:
            WaitTimeout: not finished within `timeout` seconds (also a TimeoutError).
            JobFailed: it failed for good (with the recorded error); JobCancelled: cancelled.
        """
        return cast(R, await self._client.wait(self.id, timeout, queue=self.queue))

    async def get(self) -> Job | None:
        """The job as it is now (None once it has expired)."""
        return await self._client.get(self.id, queue=self.queue)

    async def status(self) -> JobStatus | None:
        """Its status now (None once it has expired)."""
        job = await self.get()
        return None if job is None else job.status

    async def cancel(self) -> bool:
        """Cancel it (see :meth:`redisjobs.Client.cancel`)."""
        return await self._client.cancel(self.id, queue=self.queue)


class SyncTaskJob(Generic[R]):
    """A job of a task, as enqueued from sync code (:meth:`Task.enqueue_sync`): the same as
    :class:`TaskJob`, with blocking methods."""

    __slots__ = ("_client", "id", "job", "queue")

    def __init__(self, job: Job, client: SyncClient) -> None:
        self.id, self.queue, self.job = job.id, job.queue, job
        self._client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} on {self.queue!r}>"

    def result(self, timeout: float | None = None) -> R:
        """Block until the job ends and return what the function returned (raises as
        :meth:`TaskJob.result` does)."""
        return cast(R, self._client.wait(self.id, timeout, queue=self.queue))

    def get(self) -> Job | None:
        """The job as it is now (None once it has expired)."""
        job: Job | None = self._client.get(self.id, queue=self.queue)
        return job

    def status(self) -> JobStatus | None:
        """Its status now (None once it has expired)."""
        job = self.get()
        return None if job is None else job.status

    def cancel(self) -> bool:
        """Cancel it (see :meth:`redisjobs.Client.cancel`)."""
        return bool(self._client.cancel(self.id, queue=self.queue))
