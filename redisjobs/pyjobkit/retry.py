"""Pyjobkit's retry policies: how long a failed job waits before its next attempt.

A policy's :meth:`RetryPolicy.delay` gives the wait after a failed attempt (1 for the first);
a worker's policy applies to its jobs, and a job may carry its own as a spec string
(``Engine.enqueue(retry_policy="fixed:5")``). The face's worker hands the delay to redisjobs'
own retry transition (:class:`redisjobs.Retry`), so ``max_attempts`` still bounds the attempts.

Spec strings: ``<name>(:<arg>)*`` with positional arguments in the class's order and
``key=value`` for keywords: ``fixed``, ``fixed:0.5``, ``exponential:1:2:30``,
``exponential_jitter:1:2:30:0.1``, ``exponential:1:2:give_up_after_age_s=3600``.
"""

from __future__ import annotations

import random

from .markers import RETRY_POLICY_PAYLOAD_KEY

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "POLICIES",
    "RETRY_POLICY_PAYLOAD_KEY",
    "ExponentialBackoff",
    "FixedDelay",
    "JitteredExponentialBackoff",
    "RetryPolicy",
    "parse_policy",
]


def _seconds(name: str, value: float | None, *, positive: bool = False) -> float | None:
    if value is None:
        return None
    number = float(value)
    if number != number or number < 0 or (positive and number == 0):  # NaN too
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, not {value!r}")
    return number


class RetryPolicy:
    """The wait before each next attempt; subclass it and implement :meth:`delay`.

    ``give_up_after_age_s`` (a class or instance attribute) bounds the time a job is retried:
    once the job is that old, a failure is final.
    """

    give_up_after_age_s: float | None = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1 for the first)."""
        raise NotImplementedError

    def should_give_up(self, age_s: float) -> bool:
        """True when a job `age_s` seconds old is not to be retried any more."""
        cap = self.give_up_after_age_s
        return cap is not None and age_s >= cap


class FixedDelay(RetryPolicy):
    """The same wait after every failure.

    Args:
        delay_s: seconds to wait (>= 0).
        give_up_after_age_s: stop retrying a job this old (seconds), None never.
    """

    def __init__(self, delay_s: float = 1.0, give_up_after_age_s: float | None = None) -> None:
        self.delay_s = float(_seconds("delay_s", delay_s) or 0.0)
        self.give_up_after_age_s = _seconds("give_up_after_age_s", give_up_after_age_s)

    def delay(self, attempt: int) -> float:
        """``delay_s``, whatever the attempt."""
        return self.delay_s

    def __repr__(self) -> str:
        return f"FixedDelay({self.delay_s!r})"


class ExponentialBackoff(RetryPolicy):
    """``base * factor ** (attempt - 1)``, at most ``max_delay_s``.

    Args:
        base: the first wait, in seconds (>= 0).
        factor: the growth per attempt (>= 1).
        max_delay_s: the longest wait, None for no cap.
        give_up_after_age_s: stop retrying a job this old (seconds), None never.
    """

    def __init__(
        self,
        base: float = 1.0,
        factor: float = 2.0,
        max_delay_s: float | None = None,
        give_up_after_age_s: float | None = None,
    ) -> None:
        self.base = float(_seconds("base", base) or 0.0)
        if float(factor) < 1:
            raise ValueError(f"factor must be >= 1, not {factor!r}")
        self.factor = float(factor)
        self.max_delay_s = _seconds("max_delay_s", max_delay_s)
        self.give_up_after_age_s = _seconds("give_up_after_age_s", give_up_after_age_s)

    def delay(self, attempt: int) -> float:
        """The exponential wait after failed attempt `attempt`."""
        try:
            wait = self.base * self.factor ** max(0, attempt - 1)
        except OverflowError:
            wait = float("inf")
        return wait if self.max_delay_s is None else min(wait, self.max_delay_s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base!r}, {self.factor!r}, {self.max_delay_s!r})"


class JitteredExponentialBackoff(ExponentialBackoff):
    """:class:`ExponentialBackoff` times a random factor in ``[1 - jitter, 1 + jitter]``, so
    that jobs that failed together do not all retry at the same moment.

    Args:
        base: the first wait, in seconds.
        factor: the growth per attempt.
        max_delay_s: the longest wait before the jitter, None for no cap.
        jitter: the spread, 0 to 1.
        give_up_after_age_s: stop retrying a job this old (seconds), None never.
        rng: the random source (seeded in tests); default a fresh one.
    """

    def __init__(
        self,
        base: float = 1.0,
        factor: float = 2.0,
        max_delay_s: float | None = None,
        jitter: float = 0.1,
        give_up_after_age_s: float | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(base, factor, max_delay_s, give_up_after_age_s)
        self._rng = rng or random.Random()
        if not 0 <= float(jitter) <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {jitter!r}")
        self.jitter = float(jitter)

    def delay(self, attempt: int) -> float:
        """The exponential wait, jittered."""
        spread = self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        return super().delay(attempt) * spread


POLICIES: dict[str, type[RetryPolicy]] = {
    "fixed": FixedDelay,
    "exponential": ExponentialBackoff,
    "exponential_jitter": JitteredExponentialBackoff,
}
"""Spec names and their classes."""

DEFAULT_RETRY_POLICY: RetryPolicy = ExponentialBackoff(1, 2)
"""A worker's policy when it is given none: 1, 2, 4, 8 ... seconds."""


def parse_policy(spec: str | RetryPolicy) -> RetryPolicy:
    """The policy a spec string names (an instance is returned as it is).

    Raises:
        ValueError: an empty spec, an unknown name or a bad argument.
        TypeError: neither a string nor a :class:`RetryPolicy`.
    """
    if isinstance(spec, RetryPolicy):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a retry policy is a spec string or a RetryPolicy, not {spec!r}")
    name, *parts = [part.strip() for part in spec.strip().split(":")]
    if not name:
        raise ValueError("empty retry policy spec")
    cls = POLICIES.get(name)
    if cls is None:
        raise ValueError(f"unknown retry policy {name!r}; known: {', '.join(POLICIES)}")
    args: list[float] = []
    kwargs: dict[str, float] = {}
    try:
        for part in parts:
            key, eq, value = part.partition("=")
            if eq:
                kwargs[key.strip()] = float(value)
            else:
                args.append(float(part))
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad retry policy spec {spec!r}: {exc}") from exc
