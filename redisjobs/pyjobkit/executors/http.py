"""``from pyjobkit.executors.http import HttpExecutor``: Pyjobkit's HTTP executor semantics on
httpx and redisjobs' address guard.

Payload ``{"url": ..., "method": "GET", "headers": {...}, "json": ... | "data": ...,
"timeout": 30, "retries": 0, "backoff": 0.5}``. The result is ``{"status", "headers", "body",
"duration_ms"}`` **whatever the status** (a 404 or 500 is a result, not a failure: Pyjobkit's
way); a transport error is tried again `retries` times, `backoff` * 2**n seconds apart, then
fails the run. A cancel stops it at once.

Unlike redisjobs' own :class:`redisjobs.executors.HTTPExecutor`, private and loopback
addresses are reachable by default, as in Pyjobkit; ``HttpExecutor(allow_private=False)``
closes them (checked at connect time, redirects and DNS answers included).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpx

from ...errors import PayloadError
from ...executors._common import HostAllowList, fields, opt_int, opt_str
from ...executors._netguard import PrivateAllowance, guarded_transport
from ...executors.http import HTTPExecutor

__all__ = ["HTTPExecutor", "HttpExecutor", "send_retrying"]

_T = TypeVar("_T")


class HttpExecutor:
    """Sends the payload's HTTP request.

    Args:
        allow_private: non-public addresses jobs may reach: True (the default, as in Pyjobkit)
            for all, False for none, or host names and IP networks.
        max_connections: connections per run at most.
    """

    kind = "http"

    def __init__(
        self, *, allow_private: bool | Iterable[str] = True, max_connections: int = 10
    ) -> None:
        self.allow_private = PrivateAllowance(allow_private, HostAllowList(None))
        self._limits = httpx.Limits(max_connections=max_connections)

    async def run(self, *, job_id: Any, payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """Send the request (retrying transport errors); the response as a result.

        Raises:
            PayloadError: no ``url``, or ``retries``/``backoff`` that are not counts/seconds.
        """
        p = fields(payload, self.kind, '{"url": "https://..."}')
        url, method = opt_str(p, "url"), opt_str(p, "method") or "GET"
        if not url:
            raise PayloadError('an http payload needs a "url"')
        retries, backoff = opt_int(p, "retries", 0), p.get("backoff", 0.5)
        if retries is None or retries < 0:
            raise PayloadError('"retries" must be a count of retries (0 or more)')
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
            raise PayloadError('"backoff" must be a number of seconds (0 or more)')
        method = method.upper()

        async def failed(attempt: int, exc: Exception) -> None:
            said = "http executor failed" if attempt > retries else f"attempt {attempt} failed"
            await ctx.log(f"{said}: {exc}", stream="stderr")

        transport = guarded_transport(self._limits, self.allow_private)
        async with httpx.AsyncClient(timeout=payload.get("timeout", 30), transport=transport) as c:
            return await send_retrying(
                lambda: _send(c, ctx, method, url, payload),
                retries=retries,
                backoff=backoff,
                failed=failed,
            )


async def send_retrying(
    send: Callable[[], Awaitable[_T]],
    *,
    retries: int,
    backoff: float,
    failed: Callable[[int, Exception], Awaitable[None]],
    retryable: Callable[[Exception], bool] = lambda exc: True,
) -> _T:
    """What `send()` returns, trying again after an exception `retryable` accepts: up to
    `retries` more times, ``backoff * 2**n`` seconds apart (n = 0, 1, ...). The executor's
    retries and the completion webhooks' deliveries both go through here.

    Args:
        send: makes one attempt.
        retries: attempts after the first at most.
        backoff: seconds before the first retry; each next wait doubles.
        failed: hears of each failed attempt (numbered from 1) and its exception.
        retryable: whether an exception is worth another attempt.

    Raises:
        Exception: the last attempt's, or the first one `retryable` refuses. A cancel is never
            retried.
    """
    attempt = 0
    while True:
        try:
            return await send()
        except Exception as exc:
            attempt += 1
            await failed(attempt, exc)
            if attempt > retries or not retryable(exc):
                raise
        await asyncio.sleep(backoff * 2 ** (attempt - 1))


async def _send(
    client: Any, ctx: Any, method: str, url: str, payload: dict[str, Any]
) -> dict[str, Any]:
    started = time.perf_counter()
    response = await client.request(
        method,
        url,
        data=payload.get("data"),
        json=payload.get("json"),
        headers=payload.get("headers"),
    )
    duration = int((time.perf_counter() - started) * 1000)
    await ctx.log(f"{method} {url} -> {response.status_code} in {duration}ms")
    is_json = "application/json" in response.headers.get("content-type", "")
    return {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": response.json() if is_json else response.text,
        "duration_ms": duration,
    }
