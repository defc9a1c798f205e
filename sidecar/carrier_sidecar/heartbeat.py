"""Keep held messages invisible while their delivery runs, so no other consumer takes them.

Each held message has a lease that ends when its visibility does. When a third of the
visibility is left, the lease is extended by one visibility timeout (through the acknowledger, so
extensions of many messages share a call), never past SQS's 12 hours since the receive.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .acknowledger import Acknowledger
from .settings import SQS_MAX_VISIBILITY

MIN_VISIBILITY = 1.0  # below this a heartbeat cannot keep up


@dataclass(slots=True)
class _Lease:
    message_id: str
    received_at: float
    expires_at: float


class Heartbeat:
    def __init__(
        self,
        ack: Acknowledger,
        visibility: float,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ack = ack
        self._visibility = visibility
        self._lead = visibility / 3
        self.enabled = enabled and visibility >= MIN_VISIBILITY
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._wake = asyncio.Event()

    def track(self, handle: str, message_id: str, received_at: float) -> None:
        if self.enabled:
            if not self._leases:
                self._wake.set()
            self._leases[handle] = _Lease(message_id, received_at, received_at + self._visibility)

    def lease_end(self, handle: str) -> float | None:
        """When the message's visibility ends as planned (monotonic), None if not held."""
        lease = self._leases.get(handle)
        return None if lease is None else lease.expires_at

    def untrack(self, handle: str) -> None:
        self._leases.pop(handle, None)

    def beat(self) -> float | None:
        """Extend every lease that is due; return seconds until the next one is (None: none held)."""
        now = self._clock()
        next_due: float | None = None
        for handle, lease in list(self._leases.items()):
            due = lease.expires_at - self._lead
            if due <= now:
                left_in_12h = lease.received_at + SQS_MAX_VISIBILITY - now
                seconds = math.floor(min(self._visibility, left_in_12h))
                if seconds < MIN_VISIBILITY:
                    del self._leases[handle]  # SQS's 12-hour ceiling: nothing more to give
                    continue
                self._ack.change_visibility(handle, seconds, "heartbeat", lease.message_id)
                lease.expires_at = now + seconds
                due = lease.expires_at - self._lead
            if next_due is None or due < next_due:
                next_due = due
        return None if next_due is None else max(0.0, next_due - now)

    async def run(self) -> None:
        while True:
            delay = self.beat()
            self._wake.clear()
            if delay is None:
                await self._wake.wait()
            else:
                await asyncio.sleep(delay)
