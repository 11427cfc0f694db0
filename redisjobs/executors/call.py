"""Kind ``call``: run a Python callable named in the payload, from an allow-list only.

Payload: ``{"fn": "module:qualname", "args": {...} | [...], "kwargs": {...}}``. A worker runs
only functions registered with it or found in modules it allows, never an arbitrary import path
from Redis. Coroutine functions are awaited on the worker's loop; plain functions run in
threads, so blocking code cannot starve the loop (and with it the heartbeats). A function that
takes a parameter named ``ctx`` receives the :class:`~redisjobs.executors.ExecContext`, and one
named ``job_id`` its job's id (unless the payload's arguments set it).

Cancelling a coroutine job interrupts it at its next ``await``; a plain function in a thread
cannot be interrupted, so the job is recorded as cancelled (or timed out) while the thread runs
to its end (it can poll ``ctx.cancelled``). Such threads are counted in
:attr:`CallExecutor.hung_threads`, a gauge the worker reports. They are daemon threads, not a
thread pool's: Python waits for a pool's threads at exit, so one function that never returns
would keep the worker process from ever exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UnknownExecutor
from . import ExecContext

log = logging.getLogger("redisjobs.worker")


def function_ref(fn: Callable[..., Any]) -> str:
    """The ``module:qualname`` name a producer puts in a ``call`` payload for `fn`."""
    return f"{fn.__module__}:{fn.__qualname__}"


@dataclass(frozen=True, slots=True)
class _Target:
    fn: Callable[..., Any]
    is_async: bool
    wants_ctx: bool
    wants_job_id: bool


def _target(fn: Callable[..., Any]) -> _Target:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    return _Target(fn, inspect.iscoroutinefunction(fn), "ctx" in params, "job_id" in params)


class CallExecutor:
    """Runs allowed Python callables.

    Args:
        functions: callables to allow, registered under :func:`function_ref` and their plain
            ``__name__``; a mapping registers each under its key instead.
        modules: module names whose top-level callables may be called by ``module:name``
            (a name ``pkg`` allows ``pkg`` and its submodules).
        max_threads: plain functions running at once at most (each in a thread of its own).
    """

    kind = "call"

    def __init__(
        self,
        functions: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]] = (),
        *,
        modules: Iterable[str] = (),
        max_threads: int = 32,
    ) -> None:
        self._targets: dict[str, _Target] = {}
        self._modules = tuple(modules)
        self._max_threads = max_threads
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._hung: set[threading.Thread] = set()
        if isinstance(functions, Mapping):
            for name, fn in functions.items():
                self.register(fn, name=name)
        else:
            for fn in functions:
                self.register(fn)

    def register(self, fn: Callable[..., Any], *, name: str | None = None) -> str:
        """Allow `fn`; returns the name a payload's ``fn`` uses for it."""
        target = _target(fn)
        ref = name or function_ref(fn)
        self._targets[ref] = target
        if name is None and getattr(fn, "__name__", "<lambda>") != "<lambda>":
            self._targets.setdefault(fn.__name__, target)
        return ref

    def _module_allowed(self, module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in self._modules)

    def resolve(self, ref: str) -> _Target:
        """The allowed callable named `ref`.

        Raises:
            UnknownExecutor: `ref` is neither registered nor in an allowed module.
        """
        target = self._targets.get(ref)
        if target is not None:
            return target
        module, _, qualname = ref.partition(":")
        if not qualname or "<" in qualname or not self._module_allowed(module):
            raise UnknownExecutor(
                f"function {ref!r} is not allowed on this worker (register it, or allow its module)"
            )
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if not callable(obj):
            raise UnknownExecutor(f"{ref!r} is not callable")
        target = self._targets[ref] = _target(obj)
        return target

    async def run(self, *, job_id: str, payload: Any, ctx: ExecContext) -> Any:
        """Call the function the payload names with the payload's arguments."""
        if not isinstance(payload, Mapping) or not isinstance(payload.get("fn"), str):
            raise ValueError('a call payload is {"fn": "module:qualname", "args": {...}}')
        target = self.resolve(payload["fn"])
        raw_args = payload.get("args")
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = dict(payload.get("kwargs") or {})
        if isinstance(raw_args, Mapping):
            kwargs.update(raw_args)
        elif raw_args is not None:
            args = tuple(raw_args)
        if target.wants_ctx:
            kwargs["ctx"] = ctx
        if target.wants_job_id and "job_id" not in kwargs:
            kwargs["job_id"] = job_id
        if target.is_async:
            return await target.fn(*args, **kwargs)
        call = functools.partial(target.fn, *args, **kwargs)
        return await self._in_thread(call, job_id, payload["fn"])

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

    @property
    def hung_threads(self) -> int:
        """Threads still running a function whose job was stopped (timed out or cancelled)."""
        self._hung = {t for t in self._hung if t.is_alive()}
        return len(self._hung)

    async def aclose(self) -> None:
        """Nothing to stop: threads still running end on their own or with the process."""
