"""Kill the process groups of a dead worker's commands.

Run as a script (``python -I _watchdog.py GRACE``), never imported: it must start fast and
outlive the worker that started it. The worker writes ``+PGID`` when a command starts and
``-PGID`` when its group is gone. When the pipe closes, because the worker exited or was killed
with SIGKILL (the kernel closes the pipe either way), every group still listed gets SIGTERM,
then SIGKILL after GRACE seconds. A parent-death signal would only reach the worker's direct
children and needs ``preexec_fn``, which is unsafe in a threaded worker; this reaches every
process in each group.
"""

import contextlib
import os
import signal
import sys
import time


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


def main() -> None:
    """Track groups until stdin closes, then end the ones left."""
    grace = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
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
    groups = {g for g in groups if g > 1 and _alive(g)}
    _signal(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        time.sleep(0.05)
        groups = {g for g in groups if _alive(g)}
    _signal(groups, signal.SIGKILL)


if __name__ == "__main__":
    main()
