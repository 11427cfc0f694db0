"""The Lua transitions as one Redis function library (FUNCTION LOAD, then FCALL).

An EVAL runs a script's whole chunk on every call: each helper of ``_lib.lua`` it carries is
built again (a closure per ``local function``, its tables), which cost about 25 µs of Redis
time a call, more than most calls' own commands. A function library is run once, when it is
loaded; its functions then find the helpers built. The library is ``_lib.lua``, then each
``<name>.lua`` as the body of a function ``<library>_<name>`` that first enters the call's
queue (``_lib.lua``'s ``enter``).

The library's name carries a hash of its text, so that two releases of redisjobs side by side
(a rolling upgrade) each call their own functions, and a library of a given name never changes.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from typing import NamedTuple

NAME_PREFIX = "rj_"
"""What every library of redisjobs is named with (then a hash of its text)."""

_FLAGS = "#!lua flags="
_PUBLISH = "local PUBLISH = 'PUBLISH'"
"""The line of ``_lib.lua`` a cluster's library says ``SPUBLISH`` in."""


class Library(NamedTuple):
    """A function library: its name and the text FUNCTION LOAD takes."""

    name: str
    text: str

    def function(self, script: str) -> str:
        """The name FCALL takes for the transition `script` (``enqueue``, ``start`` ...)."""
        return _function_name(self.name, script)


def _function_name(library_name: str, script: str) -> str:
    return f"{library_name}_{script}"


def _read(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def _function(script: str, body: str, fname: str) -> str:
    """The registration of script `script` (`body`, its text) as function `fname`: its body,
    after ``enter``.

    A script's ``#!lua flags=`` line becomes the function's flags; a script without one gets
    none, so on a Redis past its maxmemory it is refused before it runs (see
    docs/architecture.md, "Scripts").
    """
    flags = ""
    if body.startswith("#!"):
        first, _, body = body.partition("\n")
        if not first.startswith(_FLAGS):
            raise ValueError(f"{script}.lua: unknown first line {first!r}")
        flags = ", ".join(f"'{f}'" for f in first.removeprefix(_FLAGS).split(","))
    return (
        f"register_function{{function_name = '{fname}', flags = {{{flags}}},\n"
        f"callback = function(KEYS, ARGV) enter(KEYS)\n{body}\nend}}\n"
    )


@cache
def library(scripts: tuple[str, ...], sharded: bool = False) -> Library:
    """The library of the transitions `scripts`, named by a hash of everything it holds.

    `sharded`: a Redis Cluster's, which publishes to the queue's control channel with
    ``SPUBLISH`` (sharded pub/sub, Redis 7: a message stays on the shard of its channel's slot,
    where the queue's workers listen) rather than ``PUBLISH`` (sent to every node).
    """
    lib = _read("_lib.lua")
    if sharded:
        assert _PUBLISH in lib, "_lib.lua names how it publishes"
        lib = lib.replace(_PUBLISH, "local PUBLISH = 'SPUBLISH'")
    bodies = {script: _read(f"{script}.lua") for script in scripts}
    digest = hashlib.sha1(lib.encode())
    for script, body in bodies.items():
        digest.update(b"\0" + script.encode() + b"\0" + body.encode())
    name = NAME_PREFIX + digest.hexdigest()[:16]
    registered = "".join(
        _function(script, body, _function_name(name, script)) for script, body in bodies.items()
    )
    return Library(name, f"#!lua name={name}\n{lib}\n{registered}")
