"""The part of ``_lib.lua`` a script needs.

A script call runs the script's whole chunk, so every definition of ``_lib.lua`` a script
carries is built again on every call (a closure per ``local function``), whether the script
uses it or not. Each script therefore gets only the definitions it names, directly or through
the definitions it names, in the library's order (a Lua local sees only what is defined above
it, so that order is always a valid one).
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_]\w*")
_DEFINES = re.compile(r"^local\s+(?:function\s+)?([\w\s,]+?)\s*(?:=|\()", re.MULTILINE)


def _blocks(lib: str) -> list[str]:
    """The library's top-level definitions, each with the comment lines just above it; the
    text before the first definition (the file's own comment) is left out."""
    blocks: list[list[str]] = []
    pending: list[str] = []
    for line in lib.splitlines():
        if line.startswith("--") or not line.strip():
            pending.append(line)
        elif line.startswith("local "):
            blocks.append([*pending, line])
            pending = []
        elif blocks:
            blocks[-1] += [*pending, line]
            pending = []
    return ["\n".join(b) for b in blocks]


def _names(text: str) -> set[str]:
    """The identifiers `text` uses outside its comments."""
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    return set(_NAME.findall(code))


def _defined(block: str) -> set[str]:
    found = _DEFINES.search(block)
    return {n.strip() for n in found.group(1).split(",")} if found else set()


def needed(lib: str, body: str) -> str:
    """The definitions of `lib` that `body` needs, in `lib`'s order."""
    blocks = [(b, _defined(b), _names(b)) for b in _blocks(lib)]
    wanted = _names(body)
    keep = [False] * len(blocks)
    changed = True
    while changed:
        changed = False
        for i, (_, defines, uses) in enumerate(blocks):
            if not keep[i] and defines & wanted:
                keep[i] = changed = True
                wanted |= uses
    return "\n".join(b for (b, _, _), k in zip(blocks, keep, strict=True) if k)
