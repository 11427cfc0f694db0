"""Reads and writes written once, for the async and the sync client alike, as flows.

A flow is a generator that yields what it needs from Redis, one round trip at a time, and is
sent the replies: a list of :class:`Command` (one pipeline, answered by the list of their
replies), a :class:`ScriptCall` (one Lua transition, answered by its raw reply) or
:data:`RECEIVE` (the next event of the log tail the driver holds). It builds the commands
and parses the replies; a driver does the I/O. :func:`run` drives a flow on redis-py's asyncio
client, :func:`redisjobs.sync.driver.run` on its sync one, so neither side holds a second copy of
what a read or an enqueue says to Redis. An error of a round trip is thrown into the flow, which
may turn it into one of ours (an enqueue's out-of-memory message).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Final, Generic, ParamSpec, TypeVar, cast

import redis as sync_redis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .keys import QueueKeys

if TYPE_CHECKING:
    from .homes import Homes, SyncHomes
    from .scriptcall import Arg
    from .scripts import Scripts

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command, by the name of its redis-py method (whose reply parsing it gets)."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    tolerant: bool = False
    """Its error is its reply (a read of a key that may not exist), not the round trip's."""

    def on(self, target: Any) -> Any:
        """Call it on `target`: a client (which sends it) or a pipeline (which queues it)."""
        return getattr(target, self.name)(*self.args, **self.kwargs)

    @property
    def key(self) -> str | None:
        """The key whose slot it goes to on a cluster (a SCAN's: its pattern's); None for a
        command of no key (TIME)."""
        first = self.kwargs.get("match") if self.name == "scan" else next(iter(self.args), None)
        if isinstance(first, bytes):
            return first.decode()
        return first if isinstance(first, str) else None


def cmd(name: str, *args: Any, **kwargs: Any) -> Command:
    """A :class:`Command`: ``cmd("hgetall", key)``."""
    return Command(name, args, kwargs)


def tolerant(c: Command) -> Command:
    """`c`, answered by its error when it fails (see :attr:`Command.tolerant`)."""
    return Command(c.name, c.args, c.kwargs, tolerant=True)


def checked(step: list[Command], replies: list[Any]) -> list[Any]:
    """The replies of a pipeline sent with ``raise_on_error=False``: the first error of a
    command that is not tolerant is raised."""
    for c, reply in zip(step, replies, strict=True):
        if isinstance(reply, Exception) and not c.tolerant:
            raise reply
    return replies


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One call of the Lua transition `name` on a queue (see :mod:`redisjobs.scripts`)."""

    name: str
    keys: QueueKeys
    args: Sequence[Arg]
    meanwhile: Callable[[], object] | None = None
    """The flow's own work that needs nothing from this call (a bulk enqueue's jobs, built
    while their batch is written): the asyncio driver runs it once the call is written, while
    Redis runs it; the sync and embedded ones run it before the call."""


class _Receive:
    """The type of :data:`RECEIVE`."""


RECEIVE: Final = _Receive()
"""A flow's step: the next entry of the driver's log tail, a :data:`Received`."""

Received = tuple[str | None, bytes]
"""A log entry as a tail hands it out: its log id and its encoded event, or
``(None, RECHECK)`` when entries may have been missed."""

Step = list[Command] | ScriptCall | _Receive
Flow = Generator[Step, Any, _T]
"""A generator of round trips that returns a `_T`."""


class Stepper(Generic[_T]):
    """A flow under way: the step it waits on, or (once `done`) the value it returned.

    Both drivers are this loop, around their own I/O: ``while not s.done:`` answer ``s.step``
    with :meth:`settle`.
    """

    def __init__(self, flow: Flow[_T]) -> None:
        self._flow = flow
        self.step: Step = []
        self.done = False
        self.value: _T | None = None
        self.settle(None, None)

    def settle(self, reply: Any, error: Exception | None) -> None:
        """Answer the step with its reply, or with the error it raised instead (which the flow
        may mend; if not, it comes back out of here)."""
        try:
            self.step = self._flow.send(reply) if error is None else self._flow.throw(error)
        except StopIteration as returned:
            self.done, self.value = True, returned.value


async def run(
    redis: Redis,
    flow: Flow[_T],
    scripts: Scripts | None = None,
    receive: Callable[[], Awaitable[Received]] | None = None,
) -> _T:
    """Drive `flow` on an asyncio client until it returns.

    Args:
        redis: the client its commands go to.
        flow: the flow.
        scripts: where its script calls go (flows that call none need none).
        receive: where :data:`RECEIVE` takes the next message from.
    """
    at = Stepper(flow)
    while not at.done:
        try:
            reply = await _round_trip(redis, at.step, scripts, receive)
        except Exception as exc:
            at.settle(None, exc)
        else:
            at.settle(reply, None)
    return at.value  # type: ignore[return-value]


def answerer(
    step: Step, scripts: Any, receive: Callable[[], Any] | None
) -> Callable[[], Any] | None:
    """What answers a script call (`scripts`, either client's) or a receive (`receive`); None
    for a list of commands, which the driver sends itself."""
    if isinstance(step, ScriptCall):
        assert scripts is not None, "a flow that calls scripts needs a driver with scripts"
        return functools.partial(scripts.call, step)
    if isinstance(step, _Receive):
        assert receive is not None, "a flow that receives needs a driver with a log tail"
        return receive
    return None


def _round_trip(
    redis: Redis,
    step: Step,
    scripts: Scripts | None,
    receive: Callable[[], Awaitable[Received]] | None,
) -> Awaitable[Any]:
    # Not a coroutine itself: on the hot path (an enqueue's script call) the driver awaits the
    # script's own coroutine, one frame fewer a call.
    answer = answerer(step, scripts, receive)
    if answer is not None:
        return cast(Awaitable[Any], answer())
    assert isinstance(step, list)
    return _commands(redis, step)


class Routed(Redis):
    """The client of a cluster's registry home, which knows the other homes: a flow driven on
    it sends each command to its key's home (:mod:`redisjobs.homes`)."""

    homes: Homes


class SyncRouted(sync_redis.Redis):
    """:class:`Routed` for the sync client (:func:`redisjobs.sync.driver.run`)."""

    homes: SyncHomes


async def _commands(redis: Redis, step: list[Command]) -> list[Any]:
    if isinstance(redis, Routed) and step:
        return await _routed(redis.homes, step)
    if len(step) <= 1:  # no pipeline object for one command (or none): the common case
        return [await _one(redis, c) for c in step]
    async with redis.pipeline(transaction=False) as pipe:
        for c in step:
            c.on(pipe)
        return checked(step, await pipe.execute(raise_on_error=False))


async def _routed(homes: Homes, step: list[Command]) -> list[Any]:
    """`step` on a cluster: one pipeline per home, sent at once; the replies in `step`'s
    order."""
    groups = homes.split([c.key for c in step])
    parts = await asyncio.gather(*(_commands(r, [step[i] for i in at]) for r, at in groups))
    replies: list[Any] = [None] * len(step)
    for (_, at), part in zip(groups, parts, strict=True):
        for i, reply in zip(at, part, strict=True):
            replies[i] = reply
    return replies


async def _one(redis: Redis, c: Command) -> Any:
    try:
        return await c.on(redis)
    except ResponseError as exc:
        if c.tolerant:
            return exc
        raise


def driven(
    flow: Callable[_P, Flow[_T]],
) -> Callable[Concatenate[Redis, _P], Coroutine[Any, Any, _T]]:
    """An async function of a client and `flow`'s arguments that drives `flow` on that client."""

    @functools.wraps(flow)
    async def call(redis: Redis, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await run(redis, flow(*args, **kwargs))

    return call
