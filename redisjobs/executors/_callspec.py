"""What a ``call`` payload may name and pass, checked alike by producers and workers.

A function name is ``module:qualname`` or a name registered with the worker: ASCII identifiers
joined by dots, none starting with ``_``, so that private names and dunders (``__globals__``,
``__builtins__``, ``__class__``) cannot even be asked for. A worker resolves ``module:qualname``
in an allowed module to a function *defined* there only, looked up in the module's (and a
class's) own namespace, never by walking attributes: an imported module, function or class, a
class's internals or an instance method are refused. Payload arguments bind to the function's
parameters around the ones the worker passes itself (``ctx``, and ``job_id`` or a value the
executor injects unless the caller sets it), wherever those stand in the signature.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import CallRefused

MAX_NAME = 200
"""Characters in a function name at most."""
PAYLOAD_SHAPE = '{"fn": "module:function", "args": [...] or {...}, "kwargs": {...}}'
_PART = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_CTX, _JOB_ID = "ctx", "job_id"


def _show(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:80] + "…")


@functools.lru_cache(maxsize=4096)  # producers send the same few names over and over
@functools.lru_cache(maxsize=1024)  # a producer checks the same few names for every job
def _name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    module, colon, qualname = name.partition(":")
    parts = [*module.split("."), *qualname.split(".")] if colon else name.split(".")
    for part in parts:
        if part.startswith("__") and part.endswith("__") and len(part) > 4:
            return f"{part!r} is a dunder name"
        if part.startswith("_"):
            return f"{part!r} is a private name"
        if not _PART.fullmatch(part):
            return f"{part!r} is not an identifier" if part else "it has an empty part"
    return None


def valid_name(name: str) -> bool:
    """True when a ``call`` payload may ask for `name` (see :func:`check_name`)."""
    return len(name) <= MAX_NAME and _name_problem(name) is None


def check_name(name: object) -> str:
    """`name` when a ``call`` payload may ask for it.

    Raises:
        CallRefused: not a string of dotted identifiers (``module:qualname`` or a registered
            name), or one with a private or dunder part.
    """
    if not isinstance(name, str):
        raise CallRefused(f'"fn" must be a function name string, got {type(name).__name__}')
    problem = f"longer than {MAX_NAME} characters" if len(name) > MAX_NAME else _name_problem(name)
    if problem:
        raise CallRefused(f"function {_show(name)} refused: {problem}")
    return name


PREVIOUS = "previous_result"
"""The payload key (and keyword argument) of a chain step's previous step's result."""


def call_arguments(payload: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """The function name, positional and keyword arguments of a ``call`` payload.

    ``args`` is a list (positional) or a map (keyword), ``kwargs`` a map; a map in ``args``
    wins over ``kwargs`` for a name in both.

    Raises:
        CallRefused: the payload is not of that shape, names a refused function, or passes
            ``ctx`` (reserved: the worker passes the job's context).
    """
    if not isinstance(payload, Mapping):
        raise CallRefused(f"a call payload is {PAYLOAD_SHAPE}, got {type(payload).__name__}")
    name = check_name(payload.get("fn"))
    raw_args, raw_kwargs = payload.get("args"), payload.get("kwargs")
    if raw_kwargs is not None and not isinstance(raw_kwargs, Mapping):
        raise CallRefused(f'{name}: "kwargs" must be a map, got {type(raw_kwargs).__name__}')
    kwargs = dict(raw_kwargs or {})
    args: tuple[Any, ...] = ()
    if isinstance(raw_args, Mapping):
        kwargs.update(raw_args)
    elif isinstance(raw_args, list | tuple):
        args = tuple(raw_args)
    elif raw_args is not None:
        raise CallRefused(f'{name}: "args" must be a list or a map, got {type(raw_args).__name__}')
    for key in kwargs:
        if not isinstance(key, str):
            raise CallRefused(f"{name}: argument names must be strings, got {key!r}")
    if _CTX in kwargs:
        raise CallRefused(f"{name}: 'ctx' is reserved: the worker passes the job's context")
    if PREVIOUS in payload:  # a chain's step: its previous step's result, by keyword
        kwargs[PREVIOUS] = payload[PREVIOUS]
    return name, args, kwargs


def check_call_payload(payload: Any) -> None:
    """Refuse, before it is enqueued, a ``call`` payload naming a function no worker would run.

    What a producer can tell is the form of the name in ``fn`` and the arguments' shapes
    (whether a worker allows the function, only that worker knows). A payload without ``fn``
    names no function: it is stored as given, and a worker fails it for good.

    Raises:
        CallRefused: see :func:`call_arguments`.
    """
    if _plain(payload):
        check_name(payload["fn"])
    elif isinstance(payload, Mapping) and "fn" in payload:
        call_arguments(payload)


def _plain(payload: Any) -> bool:
    """Whether `payload` is one of the common calls, a name alone or with a list of arguments
    (what a task's call makes), which have nothing to check but the name: no keyword names, no
    ctx. On the hot path of a bulk enqueue: no ABC check, no arguments built."""
    if type(payload) is not dict or "fn" not in payload:
        return False
    return len(payload) == 1 or (len(payload) == 2 and type(payload.get("args")) is list)


def _refuse(name: str, why: str) -> CallRefused:
    return CallRefused(f"function {name!r} refused: {why}")


def _describe(obj: object) -> str:
    if inspect.ismodule(obj):
        return f"the module {obj.__name__}"
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__name__}"


def find_function(name: str) -> Callable[..., Any]:
    """The function ``module:qualname`` names, defined in that module (imported now).

    `qualname` is a module-level function, or ``Class.method`` for a static or class method of
    a class defined in the module. Lookups go through the module's and the class's own
    namespace (no module ``__getattr__``, no inheritance, no descriptors but those two).

    Raises:
        CallRefused: anything else, or the module cannot be imported.
    """
    module_name, _, qualname = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _refuse(name, f"cannot import {module_name}: {exc}") from None
    parts = qualname.split(".")
    if len(parts) > 2:
        raise _refuse(name, "only a function or a Class.method of the module can be called")
    obj: Any = vars(module).get(parts[0])
    if obj is None:
        raise _refuse(name, f"{module_name} defines no {parts[0]}")
    if len(parts) == 2:
        if not isinstance(obj, type) or obj.__module__ != module_name:
            raise _refuse(name, f"{parts[0]} is {_describe(obj)}, not a class of {module_name}")
        raw = vars(obj).get(parts[1])
        if not isinstance(raw, staticmethod | classmethod):
            raise _refuse(name, f"{qualname} is not a static or class method")
        obj = raw.__get__(None, obj)
    func = getattr(obj, "__func__", obj) if inspect.ismethod(obj) else obj
    if not inspect.isfunction(func):
        raise _refuse(name, f"{qualname} is {_describe(obj)}, not a function")
    if func.__module__ != module_name or func.__qualname__ != qualname:
        where = f"{func.__module__}:{func.__qualname__}"
        raise _refuse(name, f"it is {where}, imported into {module_name}, not defined there")
    return obj  # type: ignore[no-any-return]


BUILT_IN = frozenset({_CTX, _JOB_ID})
"""The parameters the worker always fills: the job's context, and its id."""


@dataclass(frozen=True, slots=True)
class Target:
    """An allowed function, with how the worker binds a payload's arguments to it.

    `plan` holds its leading positional parameters in order: the name of a value the worker
    passes itself (``ctx``, ``job_id``, or one the executor injects), or None where the next
    payload argument goes. `wants` are the injected values it takes, each with its place in
    `plan` (the length of `plan` for a keyword-only one).
    """

    fn: Callable[..., Any]
    name: str
    is_async: bool
    plan: tuple[str | None, ...]
    wants: tuple[tuple[str, int], ...]
    var_positional: bool
    isolation: Literal["thread", "process"] = "thread"

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any],
        name: str,
        injectable: frozenset[str] = BUILT_IN,
        isolation: Literal["thread", "process"] = "thread",
    ) -> Target:
        """`fn`, to be run for payloads naming `name`; its signature read once, here.

        Args:
            fn: the function.
            name: the name payloads use for it.
            injectable: the parameter names the worker fills when `fn` declares them.
            isolation: where a plain function runs: a thread of the worker, or a child process.
        """
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):  # no signature to read: pass the arguments as given
            params = []
        named = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        takes = named & injectable
        positional = (p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        plan = tuple(p.name if p.name in takes else None for p in positional)
        wants = tuple((n, plan.index(n) if n in plan else len(plan)) for n in sorted(takes))
        var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
        is_async = inspect.iscoroutinefunction(fn)
        return cls(fn, name, is_async, plan, wants, var_positional, isolation)

    def bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], values: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments to call `fn` with: the payload's, and the injected `values` (``ctx``,
        ``job_id``...) in their places. A payload's keyword argument wins over an injected
        value of the same name, but for ``ctx``.

        Raises:
            CallRefused: more positional arguments than the function takes besides those.
        """
        if not self.wants:
            return args, kwargs
        given: list[Any] = []
        taken = reached = 0
        for slot in self.plan:
            if slot is None:
                if taken == len(args):
                    break  # the rest of the parameters come from kwargs or their defaults
                given.append(args[taken])
                taken += 1
            else:
                given.append(values[_CTX] if slot == _CTX else kwargs.pop(slot, values[slot]))
            reached += 1
        if taken < len(args):
            if not self.var_positional:
                raise self._too_many(len(args))
            given += args[taken:]
        for name, at in self.wants:
            if at >= reached:
                if name == _CTX:
                    kwargs[_CTX] = values[_CTX]
                else:
                    kwargs.setdefault(name, values[name])
        return tuple(given), kwargs

    def _too_many(self, got: int) -> CallRefused:
        passed = " and ".join(n for n in self.plan if n is not None)
        return CallRefused(
            f"{self.name} takes {self.plan.count(None)} positional argument(s), got {got}"
            + (f" ({passed}: passed by the worker)" if passed else "")
        )
