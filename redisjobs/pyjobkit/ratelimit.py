"""Pyjobkit's per-kind rate limits: a token bucket per kind in each worker process.

``Worker(rate_limits={"http": {"max_per_second": 5, "burst": 10}})`` lets at most `burst` jobs
of kind ``http`` start back to back, then 5 a second. A job that would wait longer than
:data:`LONGEST_WAIT` for its token is handed back to the queue (redisjobs'
:class:`~redisjobs.RateLimited`: no attempt used, the worker's slot freed) rather than holding
its slot and its lease while it waits. For one limit over the whole fleet, use redisjobs' own
limits (``client.set_limit``), which Redis enforces for every worker at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["LONGEST_WAIT", "RateLimitSpec", "TokenBucket", "parse_rate_limits"]

RateLimitSpec = tuple[float, float]
"""``(max_per_second, burst)``."""

LONGEST_WAIT = 0.5
"""Seconds a run waits for its token in the worker at most; a longer wait defers the job."""


class TokenBucket:
    """Tokens refill at `max_per_second` up to `burst`; each job start takes one.

    Args:
        max_per_second: the steady rate (> 0).
        burst: the most tokens that accumulate (> 0; default `max_per_second`).
    """

    def __init__(self, max_per_second: float, burst: float | None = None) -> None:
        if not float(max_per_second) > 0:
            raise ValueError("max_per_second must be > 0")
        capacity = float(max_per_second if burst is None else burst)
        if not capacity > 0:
            raise ValueError("burst must be > 0")
        self.rate = float(max_per_second)
        self.capacity = capacity
        self._tokens = capacity
        self._last = time.monotonic()  # a local throttle: this process's own clock is right
        self._lock = asyncio.Lock()

    def _check(self, tokens: float) -> None:
        if tokens > self.capacity:
            raise ValueError(f"requested {tokens} tokens but bucket capacity is {self.capacity}")

    def reserve(self, tokens: float = 1.0) -> float:
        """Take `tokens` now if there are enough and return 0, else take none and return the
        seconds until there will be."""
        self._check(tokens)
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= tokens:
            self._tokens -= tokens
            return 0.0
        return (tokens - self._tokens) / self.rate

    async def acquire(self, tokens: float = 1.0) -> None:
        """Wait until `tokens` tokens are there, then take them (first come, first served).

        Raises:
            ValueError: more tokens than the bucket holds.
        """
        if tokens <= 0:
            return
        self._check(tokens)
        async with self._lock:
            while True:  # sleep until the refill is due (no event would announce it)
                wait = self.reserve(tokens)
                if not wait:
                    return
                await asyncio.sleep(wait)


def _spec(kind: str, value: Any) -> RateLimitSpec:
    if isinstance(value, int | float) and not isinstance(value, bool):
        rate = burst = float(value)
    elif isinstance(value, Mapping):
        if "max_per_second" not in value:
            raise ValueError(f"rate limit for {kind!r} must define 'max_per_second'")
        rate = float(value["max_per_second"])
        burst = float(value.get("burst", rate))
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        try:
            rate, burst = (float(x) for x in value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"rate limit for {kind!r} must be (rate, burst)") from exc
    else:
        raise ValueError(f"rate limit for {kind!r} must be a number, mapping or (rate, burst)")
    if not (rate > 0 and burst > 0):
        raise ValueError(f"rate limit for {kind!r}: max_per_second and burst must be > 0")
    return rate, burst


def parse_rate_limits(spec: Mapping[str, Any] | str | None) -> dict[str, RateLimitSpec]:
    """Rate limits per kind from a mapping (``{"http": {"max_per_second": 5, "burst": 10}}``,
    ``{"email": 2}``, ``{"sms": (3, 4)}``) or a string ``"http:5:10,email:2"``.

    Raises:
        ValueError: a shape or a number that is not a rate limit.
    """
    if not spec:
        return {}
    if isinstance(spec, str):
        parsed: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            kind, *numbers = (p.strip() for p in item.split(":"))
            if not kind or len(numbers) not in (1, 2):
                raise ValueError(f"bad rate limit {item!r}: use kind:rate[:burst]")
            parsed[kind] = numbers if len(numbers) == 2 else float(numbers[0])
        spec = parsed
    return {str(kind): _spec(str(kind), value) for kind, value in spec.items()}
