"""What a caller-chosen name may be: a job id or a queue name (checked before any key is spelled).

Kept apart from :mod:`redisjobs.keys`, which spells the keys made of these names, so that code
that only validates input (the command line, the dashboard) never sees the key layout.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from .errors import InvalidJobId

QUEUE_NAME_RULE = "1-128 of A-Z a-z 0-9 _ . : -"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")

JOB_ID_RULE = "1-200 characters of A-Z a-z 0-9 _ - . @ + =, not starting with - or ."
JOB_ID = re.compile(r"^[A-Za-z0-9_@+=][A-Za-z0-9_@+=.\-]{0,199}$")
"""What a job id a caller chooses must match (in full: see :func:`check_job_id`).

No ``:``, so an id never spells another key of a job (``job:<id>:log``); no glob characters,
so a job's key or channel used as a pattern (SCAN MATCH, PSUBSCRIBE) matches that job alone; no
braces (hash tags), ``/``, ``#``, ``%`` or spaces, so it is a path segment of the HTTP API as
it is; no leading ``-`` (a command-line option) or ``.`` (the ``.`` and ``..`` segments). Also
a JSON Schema pattern, where ``$`` ends the string (Python's ``$`` allows a final newline:
match it in full).
"""


def check_queue_name(name: str) -> str:
    """`name` when it is a valid queue name: letters, digits and ``_ . : -`` only, so it can
    never break out of its keys' hash tag.

    Raises:
        ValueError: it is not (or is empty, or too long).
    """
    if not _QUEUE_NAME.match(name):
        raise ValueError(f"invalid queue name {name!r}: use {QUEUE_NAME_RULE}")
    return name


def is_job_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a valid job id (a string of :data:`JOB_ID_RULE`)."""
    return isinstance(value, str) and JOB_ID.fullmatch(value) is not None


def check_job_id(job_id: object) -> str:
    """`job_id` when it is a valid job id (see :data:`JOB_ID_RULE`).

    Every call that turns a caller's id into a key checks it here first. Ids that came out of
    Redis are used as they are, unchecked: a worker must serve whatever a producer wrote.

    Raises:
        InvalidJobId: not a string, or not of the charset, or empty, or too long.
    """
    if is_job_id(job_id):
        return job_id
    if not isinstance(job_id, str):
        raise InvalidJobId(f"a job id must be a string, got {type(job_id).__name__}")
    shown = repr(job_id[:60]) + ("..." if len(job_id) > 60 else "")  # hostile ids can be huge
    raise InvalidJobId(f"invalid job id {shown}: a job id is {JOB_ID_RULE}")
