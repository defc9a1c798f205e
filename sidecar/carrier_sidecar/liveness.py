"""Is every receive loop making progress? What /healthz answers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class Liveness:
    """Each loop stamps as it goes; a loop parked on a full in-flight budget counts as alive.

    Loops start parked: until receiving begins the sidecar is waiting (for the queue to resolve or
    the worker's health gate to open), and a slow worker must not get its sidecar restarted.
    """

    def __init__(self, loops: int, stale_after: float, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._stale_after = stale_after
        now = clock()
        self._stamps = [now] * loops
        self._parked = [True] * loops
        self._idle: asyncio.Event | None = None

    def stamp(self, loop: int) -> None:
        self._stamps[loop] = self._clock()

    def park(self, loop: int, parked: bool) -> None:
        self._parked[loop] = parked
        self._stamps[loop] = self._clock()
        if parked and self._idle is not None and self.idle():
            self._idle.set()

    def live(self) -> bool:
        horizon = self._clock() - self._stale_after
        return all(p or s >= horizon for p, s in zip(self._parked, self._stamps, strict=True))

    def idle(self) -> bool:
        """No loop is inside a receive call (every one waits for slots or has stopped)."""
        return all(self._parked)

    async def wait_idle(self, bound: float) -> None:
        """Until :meth:`idle`, for at most ``bound`` seconds (shutdown: let receives land)."""
        if self.idle():
            return
        self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), bound)
