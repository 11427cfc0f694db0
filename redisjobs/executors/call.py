"""Kind ``call``: run a Python callable named in the payload, from an allow-list only.

Payload: ``{"fn": "module:qualname", "args": {...} | [...], "kwargs": {...}}``. A worker runs
only functions registered with it or *defined* in modules it allows, never an arbitrary import
path from Redis (:mod:`._callspec` says what a name may be and how it is looked up). Coroutine
functions are awaited on the worker's loop; plain functions run in threads, so blocking code
cannot starve the loop (and with it the heartbeats). A function that takes a parameter named
``ctx`` receives the :class:`~redisjobs.executors.ExecContext`, one named ``job_id`` its job's
id, and one named after a value the executor was given in `inject` (``manager``, say) that
value (those two unless the payload's keyword arguments set them); positional payload
arguments fill the other parameters, wherever the injected ones stand.

Cancelling a coroutine job interrupts it at its next ``await``; a plain function in a thread
cannot be interrupted, so the job is recorded as cancelled (or timed out) while the thread runs
to its end (it can poll ``ctx.cancelled``). Such threads are counted in
:attr:`CallExecutor.hung_threads`, a gauge the worker reports. They are daemon threads, not a
thread pool's: Python waits for a pool's threads at exit, so one function that never returns
would keep the worker process from ever exiting.

A plain function registered with ``isolation="process"`` runs in a child process instead
(:mod:`._procpool`, at most `max_processes` of them), which is killed when its job times out or
is cancelled: its slot is free at once. Its arguments and result cross as msgpack; it gets
``ctx`` (a :class:`~._procchild.ChildContext` whose ``log`` and ``set_progress`` report to the
job's context) and ``job_id``, but no injected value, which cannot cross processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from ..errors import CallRefused
from . import ExecContext
from ._callspec import (
    BUILT_IN,
    Target,
    call_arguments,
    check_name,
    find_function,
    valid_name,
)
from ._procpool import ProcessPool, check_process_target, unwrap
from .base import ExecutorBase

log = logging.getLogger("redisjobs.worker")


def function_ref(fn: Callable[..., Any]) -> str:
    """The ``module:qualname`` name a producer puts in a ``call`` payload for `fn`."""
    return f"{fn.__module__}:{fn.__qualname__}"


class CallExecutor(ExecutorBase):
    """Runs allowed Python callables.

    Args:
        functions: callables to allow, registered under :func:`function_ref` and their plain
            ``__name__``; a mapping registers each under its key instead.
        modules: module names whose top-level callables may be called by ``module:name``
            (a name ``pkg`` allows ``pkg`` and its submodules).
        max_threads: plain functions running at once at most (each in a thread of its own).
        inject: values passed to the functions that declare a parameter of their name, as
            ``ctx`` and ``job_id`` are (``{"manager": manager}``, say).
        max_processes: child processes at once at most, for the functions registered with
            ``isolation="process"`` (default: the CPU count); started on the first such job.

    Raises:
        ValueError: `inject` names ``ctx`` or ``job_id``, or a name no parameter can have.
    """

    kind = "call"

    def __init__(
        self,
        functions: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]] = (),
        *,
        modules: Iterable[str] = (),
        max_threads: int = 32,
        inject: Mapping[str, Any] | None = None,
        max_processes: int | None = None,
    ) -> None:
        self._inject = dict(inject or {})
        for name in self._inject:
            if name in BUILT_IN or not name.isidentifier():
                raise ValueError(f"cannot inject {name!r}: ctx and job_id are the worker's own")
        self._injectable = BUILT_IN | frozenset(self._inject)
        self._targets: dict[str, Target] = {}
        self._registered: list[str] = []  # the names functions were registered under
        self._modules = tuple(modules)
        self._max_threads = max_threads
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._hung: set[threading.Thread] = set()
        self._max_processes = max_processes
        self._pool: ProcessPool | None = None
        if isinstance(functions, Mapping):
            for name, fn in functions.items():
                self.register(fn, name=name)
        else:
            for fn in functions:
                self.register(fn)

    def register(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        isolation: Literal["thread", "process"] = "thread",
    ) -> str:
        """Allow `fn`; returns the name a payload's ``fn`` uses for it.

        Without `name`, `fn` is registered under :func:`function_ref` and its plain
        ``__name__``, those of the two a payload may use.

        Args:
            fn: the function.
            name: the name payloads use for it.
            isolation: ``"thread"`` for a plain function to run in a thread of the worker,
                ``"process"`` in a child process that a timeout or cancel of its job kills.

        Raises:
            CallRefused: no name a payload may use (a private function, say: register it under
                a public `name`), or (a ValueError too) `fn` cannot run in a child process: see
                :func:`~._procpool.check_process_target`; it takes an injected value.
            ValueError: `isolation` is neither.
        """
        if name is not None:
            names = [check_name(name)]
        else:
            short = getattr(fn, "__name__", "")
            names = [n for n in (function_ref(fn), short) if isinstance(n, str) and valid_name(n)]
            if not names:
                raise CallRefused(
                    f"{function_ref(fn)} has no name a call payload may use: register it under "
                    "a public one"
                )
        if self._isolation(fn, isolation) == "process":
            fn = unwrap(fn)  # what the child looks up by its module and name
        target = Target.of(fn, names[0], self._injectable, isolation)
        foreign = sorted({want for want, _ in target.wants} - BUILT_IN)
        if isolation == "process" and foreign:
            raise CallRefused(
                f"{names[0]}: a function in a child process gets ctx and job_id, but no injected "
                f"value: {', '.join(foreign)} cannot cross"
            )
        self._targets[names[0]] = target
        self._registered.append(names[0])
        for alias in names[1:]:
            self._targets.setdefault(alias, target)
        return names[0]

    @staticmethod
    def _isolation(fn: Callable[..., Any], isolation: str) -> Literal["thread", "process"]:
        if isolation == "thread":
            return "thread"
        if isolation != "process":
            raise ValueError(f"isolation must be 'thread' or 'process', got {isolation!r}")
        check_process_target(fn)
        return "process"

    @property
    def allowed(self) -> str:
        """The registered functions, then ``<module>:*`` for each allowed module."""
        return ", ".join([*self._registered, *(f"{m}:*" for m in self._modules)])

    def _module_allowed(self, module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in self._modules)

    def resolve(self, ref: str) -> Target:
        """The allowed callable named `ref`.

        Raises:
            CallRefused: `ref` is neither registered nor a function defined in an allowed
                module, or is no name a payload may use.
        """
        target = self._targets.get(ref)
        if target is not None:
            return target
        module, colon, _ = check_name(ref).partition(":")
        if not colon or not self._module_allowed(module):
            raise CallRefused(
                f"function {ref!r} refused: it is not allowed on this worker (register it, or "
                "allow its module)"
            )
        target = self._targets[ref] = Target.of(find_function(ref), ref, self._injectable)
        return target

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        """Call the function the payload names with the payload's arguments."""
        ref, args, kwargs = call_arguments(payload)
        target = self.resolve(ref)
        ctx.function = target.name  # allowed, so a bounded label for the duration metric
        args, kwargs = target.bind(args, kwargs, {**self._inject, "ctx": ctx, "job_id": job_id})
        if target.is_async:
            return await target.fn(*args, **kwargs)
        if target.isolation == "process":
            if self._pool is None:
                self._pool = ProcessPool(self._max_processes)
            return await self._pool.run(target.fn, args, kwargs, ctx)
        call = functools.partial(target.fn, *args, **kwargs)
        return await self._in_thread(call, job_id, ref)

    async def _in_thread(self, call: Callable[[], Any], job_id: str, ref: str) -> Any:
        """Run `call` in a daemon thread (once one of the `max_threads` slots is free)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self._max_threads))
        slots = self._slots[1]
        await slots.acquire()
        done: asyncio.Future[Any] = loop.create_future()

        def finished(ok: bool, value: Any) -> None:  # on the loop
            slots.release()
            if done.done():
                return  # the job was stopped meanwhile; nobody waits for this any more
            if ok:
                done.set_result(value)
            else:
                done.set_exception(value)

        def work() -> None:  # in the thread
            try:
                outcome = (True, call())
            except BaseException as exc:  # the job's failure (even SystemExit), as a pool's
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left
                loop.call_soon_threadsafe(finished, *outcome)

        thread = threading.Thread(target=work, name=f"redisjobs-call-{job_id}", daemon=True)
        try:
            thread.start()
        except BaseException:
            slots.release()
            raise
        try:
            return await done
        except asyncio.CancelledError:
            if thread.is_alive():  # nothing can stop a thread
                self._hung.add(thread)
                log.warning(
                    "job %s was stopped but %s still runs in its thread (%d hung threads)",
                    job_id,
                    ref,
                    self.hung_threads,
                )
            raise

    async def aclose(self) -> None:
        """Stop the child processes (if a function ever ran in one)."""
        if self._pool is not None:
            await self._pool.aclose()

    @property
    def hung_threads(self) -> int:
        """Threads still running a function whose job was stopped (timed out or cancelled)."""
        self._hung = {t for t in self._hung if t.is_alive()}
        return len(self._hung)
