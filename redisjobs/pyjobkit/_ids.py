"""Job ids as Pyjobkit code sees them (UUIDs), and Pyjobkit executors run the face's way."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import MAX_RETRY_AFTER, RateLimited, RedisJobsError, Retry
from ..executors import ExecContext as _BaseContext
from ..executors.base import ExecutorBase, adapt
from .markers import (
    RETRY_POLICY_PAYLOAD_KEY,
    SHADOW_PAYLOAD_KEY,
    WEBHOOK_PAYLOAD_KEY,
    strip_internal_payload,
)
from .ratelimit import LONGEST_WAIT, TokenBucket

if TYPE_CHECKING:
    from .contracts import Executor
    from .retry import RetryPolicy
    from .worker_filters import JobFilter

SHADOW_RESULT = {"shadow": True, "result_discarded": True}
"""What a shadow run (a dry run) records as its result, whatever the executor returned."""


def uuid_of(job_id: uuid.UUID | str) -> uuid.UUID:
    """A job id as the UUID Pyjobkit code expects."""
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))


class UUIDJobs(ExecutorBase):
    """Runs a Pyjobkit executor the way Pyjobkit does: the job id as a UUID, the face's payload
    keys stripped, a shadow job's result discarded, a failure retried after the delay of the
    job's retry policy (else the worker's).

    Args:
        executor: the Pyjobkit executor.
        retry_policy: the worker's policy; None leaves the delay to the job's own backoff.
        bucket: the kind's rate limit in this worker: a run waits for its token, or, when
            that would take longer than ``LONGEST_WAIT``, goes back to the queue for that long
            (no attempt used).
        only: the worker's ``kinds``/``tags`` filter: a job it does not let through is
            declined (back to the queue for another worker) before anything else.
    """

    def __init__(
        self,
        executor: Executor,
        retry_policy: RetryPolicy | None = None,
        bucket: TokenBucket | None = None,
        only: JobFilter | None = None,
    ) -> None:
        self.kind = executor.kind
        self._only = only
        self._executor = executor
        self._policy = retry_policy
        self._bucket = bucket
        self._base = adapt(executor)  # its aclose and hung_threads, or their defaults

    async def run(self, *, job_id: str, payload: Any, ctx: _BaseContext) -> Any:
        """Run the job with the Pyjobkit executor."""
        if self._only is not None:
            self._only.check(self.kind, payload)
        if self._bucket is not None:
            await self._take_token()
        hooks = payload.get(WEBHOOK_PAYLOAD_KEY) if isinstance(payload, dict) else None
        if hooks:
            return await self._notifying(job_id, payload, ctx, hooks)
        return await self._run(job_id, payload, ctx)

    async def _notifying(self, job_id: str, payload: Any, ctx: _BaseContext, hooks: Any) -> Any:
        """Run the job, then fire its webhook once its outcome is recorded."""
        from .worker_webhooks import notify

        started = time.perf_counter()
        try:
            return await self._run(job_id, payload, ctx)
        finally:
            engine = getattr(ctx, "engine", None)
            if engine is not None:
                notify(await engine.client(), job_id, ctx.attempt, hooks, started)

    async def _run(self, job_id: str, payload: Any, ctx: _BaseContext) -> Any:
        shadow = isinstance(payload, dict) and bool(payload.get(SHADOW_PAYLOAD_KEY))
        if shadow:
            from .contracts import ExecContext  # (it imports this module)

            if isinstance(ctx, ExecContext):
                ctx.is_shadow = True
        try:
            result = await self._executor.run(
                job_id=uuid_of(job_id), payload=strip_internal_payload(payload), ctx=ctx
            )
        except RedisJobsError:
            raise  # the face's own signals (Retry, RateLimited, ...) as they are
        except Exception as exc:
            policy = self._policy_for(payload)
            if policy is None:
                raise
            raise Retry(min(policy.delay(ctx.attempt), MAX_RETRY_AFTER)) from exc
        return SHADOW_RESULT if shadow else result

    async def _take_token(self) -> None:
        assert self._bucket is not None
        wait = self._bucket.reserve()
        if wait > LONGEST_WAIT:
            raise RateLimited(wait)
        if wait:
            await self._bucket.acquire()

    def _policy_for(self, payload: Any) -> RetryPolicy | None:
        spec = payload.get(RETRY_POLICY_PAYLOAD_KEY) if isinstance(payload, dict) else None
        if spec:
            from .retry import parse_policy

            try:
                return parse_policy(spec)
            except (TypeError, ValueError):
                pass  # checked at enqueue; a hand-written bad spec falls back to the worker's
        return self._policy

    async def aclose(self) -> None:
        """The executor's own ``aclose``, if it has one."""
        await self._base.aclose()

    @property
    def hung_threads(self) -> int:
        """The executor's own ``hung_threads``, else 0."""
        return self._base.hung_threads
