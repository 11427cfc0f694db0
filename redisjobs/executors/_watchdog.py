"""Kill the process groups of a dead worker's commands.

Run as a script (``python -I _watchdog.py GRACE TOKEN``), never imported: it must start fast and
outlive the worker that started it. The worker writes ``+PGID`` when a command starts and
``-PGID`` when its group is gone, and gives every command ``REDISJOBS_WATCHDOG=TOKEN`` in its
environment. When the pipe closes, because the worker exited or was killed with SIGKILL (the
kernel closes the pipe either way), the groups still listed and the groups of every process
carrying the token (found in ``/proc``: it covers a command started just before the worker died,
and processes that left their group) get SIGTERM, then SIGKILL after GRACE seconds.

A parent-death signal would reach only the worker's direct children and needs ``preexec_fn``,
which is unsafe in a threaded worker; this reaches every process of every command.
"""

import contextlib
import os
import signal
import sys
import time

ENV = "REDISJOBS_WATCHDOG"
"""The variable that marks the processes of one worker's commands."""


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, but is not ours to signal
    return True


def _signal(groups: set[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def _marked_groups(token: str) -> set[int]:
    """Process groups of the processes whose environment carries the token."""
    mark = b"\0" + ENV.encode() + b"=" + token.encode() + b"\0"
    groups: set[int] = set()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc: the listed groups must do
        return groups
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if mark in b"\0" + f.read():
                    groups.add(os.getpgid(pid))
        except OSError:
            continue
    return groups


def main() -> None:
    """Track groups until stdin closes, then end the ones left."""
    grace = float(sys.argv[1])
    token = sys.argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the worker's to handle
    groups: set[int] = set()
    for line in sys.stdin.buffer:
        try:
            pgid = int(line[1:])
        except ValueError:
            continue
        if line.startswith(b"+"):
            groups.add(pgid)
        else:
            groups.discard(pgid)
    groups |= _marked_groups(token)
    groups = {g for g in groups if g > 1 and g != os.getpgid(0) and _alive(g)}
    _signal(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        time.sleep(0.05)
        groups = {g for g in groups if _alive(g)}
    _signal(groups, signal.SIGKILL)


if __name__ == "__main__":
    main()
