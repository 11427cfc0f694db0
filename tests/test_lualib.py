"""Each script carries only the part of ``_lib.lua`` it uses (redisjobs/scripts/lualib.py)."""

from __future__ import annotations

from importlib.resources import files

from redisjobs.scripts import NAMES, source
from redisjobs.scripts.lualib import needed

LIB = """-- the library's own comment
local A = 1
-- b uses A
local function b() return A end
local function c() return 2 end
local D, E = {}, {}
local function f()
  return b() + D[1]
end
"""


def test_a_body_gets_what_it_names_and_what_that_names() -> None:
    kept = needed(LIB, "return f()")
    assert "local A = 1" in kept and "local function b()" in kept and "local D, E" in kept
    assert "local function c()" not in kept
    assert kept.index("local A") < kept.index("local function b") < kept.index("local function f")
    assert needed(LIB, "-- c() only in a comment\nreturn 1") == ""


def test_every_script_is_smaller_than_the_library() -> None:
    lib = files("redisjobs.scripts").joinpath("_lib.lua").read_text(encoding="utf-8")
    for name in NAMES:
        text = source(name)
        assert len(text) < len(lib), name
        assert "local PREFIX = KEYS[1]" in text, name  # every key is built from it
