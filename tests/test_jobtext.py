"""A job's name and its call as it reads, whatever its payload holds."""

from __future__ import annotations

from typing import Any

import pytest

from redisjobs import Client
from redisjobs.jobtext import LONG, SHORT, call_text, job_name, short_repr

RESIZE = {"fn": "myapp.tasks:resize", "args": ["a.png"], "kwargs": {"width": 640}}


def test_a_call_job_is_named_by_its_function_and_reads_as_the_call() -> None:
    assert job_name("call", RESIZE) == "myapp.tasks:resize"
    assert call_text("call", RESIZE) == "myapp.tasks:resize('a.png', width=640)"
    as_map = {"fn": "m:f", "args": {"path": "a.png"}, "kwargs": {"path": "b", "n": None}}
    assert call_text("call", as_map) == "m:f(path='a.png', n=None)"  # "args" wins, as bound
    assert call_text("call", {"fn": "m:f"}) == "m:f()"


def test_other_kinds_are_named_by_their_kind_with_where_they_go() -> None:
    hook = {"url": "https://user:secret@api.example.com/hooks/order?token=t", "method": "GET"}
    assert job_name("http", hook) == "http"
    assert call_text("http", hook) == "http GET api.example.com/hooks/order"  # no credentials
    assert call_text("http", {"url": "http://[::1"}) == "http"  # a URL that does not parse
    assert call_text("subprocess", {"argv": ["pg_dump", "-f", "x.sql"]}) == "subprocess pg_dump"
    assert call_text("subprocess", {"cmd": "  ls -l | wc"}) == "subprocess ls"
    assert call_text("ssh", {"host": "build-1", "argv": ["make", "all"]}) == "ssh build-1 make"
    assert call_text("mine", {"anything": 1}) == "mine"


def test_long_arguments_are_elided_to_the_limit() -> None:
    payload = {"fn": "m:f", "args": ["x" * 500, list(range(10**6))], "kwargs": {"k": b"\0" * 10**6}}
    short = call_text("call", payload)
    assert len(short) <= SHORT
    assert short.startswith("m:f('xxx") and "[0, 1, 2, 3, 4, 5, ...]" in short
    assert short.endswith("k=b'\\x0…)")
    long = call_text("call", payload, LONG)
    assert len(long) <= LONG
    assert "[0, 1, 2, 3, 4, 5" in long and "k=b'\\x00" in long
    many = {"fn": "m:f", "args": list(range(1000))}
    assert call_text("call", many, 30) == "m:f(0, 1, 2, 3, 4, 5, 6, 7, …)"
    assert len(call_text("call", {"fn": "m:" + "f" * 190, "args": [1]})) <= SHORT


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        ("call", {"fn": 5, "args": 7, "kwargs": [1]}, "call(*7, **[1])"),
        ("call", {"fn": "m:f", "kwargs": {1: 2, "a b": 3}}, "m:f(**{1: 2}, **{'a b': 3})"),
        ("call", {"fn": "\x1b[2Jm:f"}, "'\\x1b[2Jm:f'()"),  # no escape reaches a terminal
        ("call", [1, 2], "call"),
        ("call", None, "call"),
        ("call", {"args": [1]}, "call(1)"),
        ("http", {"url": 7, "method": ["x"]}, "http ?"),
        ("ssh", {"host": "h\x1b", "cmd": ["rm"]}, "ssh 'h\\x1b rm'"),
    ],
)  # fmt: skip
def test_hostile_payloads_still_read(kind: str, payload: Any, expected: str) -> None:
    assert call_text(kind, payload) == expected


def test_deep_nesting_and_huge_maps_are_cut_not_walked() -> None:
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    assert call_text("call", {"fn": "m:f", "args": [nested]}) == "m:f([[[[...]]]])"
    huge = {f"k{i}": i for i in range(200_000)}
    assert call_text("call", {"fn": "m:f", "kwargs": huge}, 40).endswith(", …)")
    assert short_repr({i: i for i in range(100)}, 40) == "{0: 0, 1: 1, 2: 2, ...}"


def test_a_name_is_one_printable_line_of_bounded_length() -> None:
    assert job_name("call", {"fn": "a" * 300}) == "a" * 199 + "…"
    assert job_name("call", {"fn": "m:f\nfake line"}) == "'m:f\\nfake line'"
    assert job_name("call", {"fn": ""}) == "call"


async def test_a_job_read_from_redis_has_its_name_and_call(client: Client) -> None:
    job = await client.enqueue("call", RESIZE)
    got = await client.get(job.id)
    assert got is not None
    assert got.name == "myapp.tasks:resize"
    assert got.call_text() == "myapp.tasks:resize('a.png', width=640)"
    assert got.call_text(12) == "myapp.t…(…)"
    hook = await client.get((await client.enqueue("http", {"url": "https://example.com/x"})).id)
    assert hook is not None and hook.name == "http"
