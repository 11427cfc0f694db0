"""``redisjobs worker --processes N``: N worker processes, kept alive, stopped together.

Each child runs in its own session, so a Ctrl-C on the terminal reaches the supervisor only,
which forwards it once: a child getting both would take it as the second signal and hand its
jobs back without the grace period. A child still running `STOP_MARGIN` seconds past its grace
period (past the signal, after a second one) is killed: a stop never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from ..worker import STOP_MARGIN
from .common import on_stop_signals

log = logging.getLogger("redisjobs.supervisor")

RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 10.0
STABLE_AFTER = 10.0
"""Seconds after which a child that dies is restarted at once again: not a crash loop."""


def describe(code: int) -> str:
    """A child's exit status in words: ``exit code 1``, ``exit code -9 (SIGKILL)``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {code} ({signal.Signals(-code).name})"
    return f"exit code {code}"


class Supervisor:
    """Keeps `processes` copies of `command` running until SIGTERM/SIGINT.

    Args:
        command: the child's argv.
        processes: how many children.
        grace: the children's grace period (seconds).
        burst: the children stop by themselves when their queues have nothing left to run: one
            that exits cleanly is done, not restarted.

    A child that exits while no stop was asked for is restarted, after a delay that doubles
    while children keep dying young. Stop signals are forwarded to every child (a second one
    too: it makes workers hand their jobs back at once). Children still alive `grace` +
    `STOP_MARGIN` seconds after the first signal (`STOP_MARGIN` after the second) are killed.
    """

    def __init__(
        self, command: list[str], processes: int, grace: float, *, burst: bool = False
    ) -> None:
        self.command = command
        self.burst = burst
        self.processes = processes
        self.grace = grace
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._signal: signal.Signals | None = None
        self._kill_at: asyncio.TimerHandle | None = None

    async def run(self) -> int:
        """Run until stopped; 0 when every child then ended cleanly."""
        on_stop_signals(self._on_signal)
        try:
            codes = await asyncio.gather(*(self._keep(slot) for slot in range(self.processes)))
        finally:
            if self._kill_at is not None:
                self._kill_at.cancel()
        return 0 if all(self._clean(code) for code in codes) else 1

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s: stopping %d worker processes", sig.name, len(self._children))
        second = self._stopping.is_set()
        self._signal = sig
        self._stopping.set()
        for child in self._children.values():
            self._forward(child, sig)
        loop = asyncio.get_running_loop()
        kill_at = loop.time() + (0 if second else self.grace) + STOP_MARGIN
        if self._kill_at is None or kill_at < self._kill_at.when():
            if self._kill_at is not None:
                self._kill_at.cancel()
            self._kill_at = loop.call_at(kill_at, self._kill_all)

    def _kill_all(self) -> None:
        """SIGKILL the children that outlived their stop (their jobs return after lease_ttl)."""
        for child in self._children.values():
            log.warning("worker process %d did not stop in time; killing it", child.pid)
            self._forward(child, signal.SIGKILL)

    @staticmethod
    def _forward(child: asyncio.subprocess.Process, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(sig)

    def _clean(self, code: int) -> bool:
        # A child the forwarded signal reached before it could handle signals died of it.
        return code == 0 or (self._signal is not None and code == -self._signal)

    async def _keep(self, slot: int) -> int:
        """Keep one child running; its last exit status once stopping."""
        delay = RESTART_DELAY
        while True:
            started = time.monotonic()
            child = await asyncio.create_subprocess_exec(*self.command, start_new_session=True)
            self._children[slot] = child
            if self._signal is not None:  # the stop came while it was being spawned
                self._forward(child, self._signal)
            log.info("worker process %d started (%d of %d)", child.pid, slot + 1, self.processes)
            code = await child.wait()
            del self._children[slot]
            if self._stopping.is_set() or (self.burst and code == 0):
                if not self._clean(code):
                    log.warning("worker process %d ended with %s", child.pid, describe(code))
                return code
            if time.monotonic() - started >= STABLE_AFTER:
                delay = RESTART_DELAY
            log.warning(
                "worker process %d exited unexpectedly with %s; restarting it in %.1f s",
                child.pid,
                describe(code),
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return 0
            delay = min(delay * 2, MAX_RESTART_DELAY)
