"""The Lua GCRA (``_lib.lua``'s gcra_wait and gcra_take, as ``start`` runs them) against a
small Python model, on random sequences of take / advance time / set_limit.

Redis's clock cannot be moved, so the limiter's math is pure functions of the clock in
``_lib.lua``, and this test runs them in Redis (EVAL of the library, then a body that calls
them) with the clock as an argument: the decisions must
match exactly. The model is a token bucket, the other classic formulation: GCRA with burst b
and interval T admits exactly what a bucket of b tokens refilled one per T admits. Intervals
are whole ms, so both sides compute exactly.
"""

from __future__ import annotations

from fractions import Fraction
from importlib.resources import files
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from redisjobs.testing import RedisServer

BODY = """
enter(KEYS)  -- as every function of the library begins: the helpers' globals, the queue
local tat, allowed, out = 0, 0, {}
local T, tau = 0, 0
for i = 1, #ARGV, 3 do
  local op, a, b = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if op == 'limit' then
    T, tau = a, (b - 1) * a
  elseif gcra_wait(tat, a, tau) == 0 then
    tat = gcra_take(tat, a, T)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


class Bucket:
    """A token bucket: `burst` tokens at most, one more per `interval` ms."""

    def __init__(self) -> None:
        self.tokens = Fraction(0)
        self.at = 0
        self.interval, self.burst = 1, 1
        self.fresh = True

    def limit(self, interval: int, burst: int) -> None:
        self._refill(self.at)
        # the bucket's fill carries over as the TAT does: as a time, not a count of tokens
        behind = (self.burst - self.tokens) * self.interval
        self.interval, self.burst = interval, burst
        self.tokens = burst - behind / interval  # below 0: a debt the refill pays first

    def _refill(self, now: int) -> None:
        if self.fresh:
            self.tokens, self.fresh = Fraction(self.burst), False
        self.tokens = min(
            Fraction(self.burst), self.tokens + Fraction(now - self.at, self.interval)
        )
        self.at = now

    def take(self, now: int) -> bool:
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 50)),  # after this many ms
        st.tuples(st.just("limit"), st.integers(1, 40), st.integers(1, 5)),  # T ms, burst
    ),
    max_size=60,
)


@pytest.fixture(scope="module")
def lua(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


@settings(max_examples=150, deadline=None)
@given(first=st.tuples(st.integers(1, 40), st.integers(1, 5)), ops=OPS)
def test_gcra_matches_a_token_bucket(
    lua: redis.Redis, first: tuple[int, int], ops: list[tuple[Any, ...]]
) -> None:
    lib = files("redisjobs.scripts").joinpath("_lib.lua").read_text(encoding="utf-8")
    script = lib + BODY
    now = 10_000
    args: list[Any] = ["limit", first[0], first[1]]
    model = Bucket()
    model.interval, model.burst = first
    expected = []
    for op in ops:
        if op[0] == "take":
            now += op[1]
            args += ("take", now, 0)
            expected.append(int(model.take(now)))
        else:
            model._refill(now)
            model.limit(op[1], op[2])
            args += ("limit", op[1], op[2])
    got = lua.eval(script, 1, "rj:{model}:", *args)
    assert got == expected, (first, ops)
