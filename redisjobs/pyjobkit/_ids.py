"""Job ids as Pyjobkit code sees them (UUIDs), and executors handed them so."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ..executors import ExecContext as _BaseContext
from ..executors.base import ExecutorBase, adapt

if TYPE_CHECKING:
    from .contracts import Executor


def uuid_of(job_id: uuid.UUID | str) -> uuid.UUID:
    """A job id as the UUID Pyjobkit code expects."""
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))


class UUIDJobs(ExecutorBase):
    """Hands an executor its job id as a UUID, as Pyjobkit executors expect."""

    def __init__(self, executor: Executor) -> None:
        self.kind = executor.kind
        self._executor = executor
        self._base = adapt(executor)  # its aclose and hung_threads, or their defaults

    async def run(self, *, job_id: str, payload: Any, ctx: _BaseContext) -> Any:
        """Run the job with the Pyjobkit executor, its id as a UUID."""
        return await self._executor.run(job_id=uuid_of(job_id), payload=payload, ctx=ctx)

    async def aclose(self) -> None:
        """The executor's own ``aclose``, if it has one."""
        await self._base.aclose()

    @property
    def hung_threads(self) -> int:
        """The executor's own ``hung_threads``, else 0."""
        return self._base.hung_threads
