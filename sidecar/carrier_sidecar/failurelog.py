"""Delivery failures in the log: bounded, still telling.

An always-failing webhook used to write a warning per attempt (30 584 lines in 45 s for 5 000
messages), burying everything else. Now every failed or deferred delivery is a DEBUG line with
all its fields; at WARNING, the first failure of each reason in a window is logged as it happens
(so a new problem shows at once), and at the end of the window one summary line counts every
failure of the window by reason. That is at most ``MAX_REASONS + 1`` warnings per window,
whatever the message rate.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

log = logging.getLogger("carrier.delivery")

SUMMARY_INTERVAL: Final = 10.0  # seconds per window
MAX_REASONS: Final = 20  # distinct reasons logged one by one (and listed) per window


class FailureLog:
    def __init__(self, interval: float = SUMMARY_INTERVAL) -> None:
        self.interval = interval
        self._counts: dict[str, int] = {}
        self._total = 0

    def failed(self, message: str, reason: str, fields: dict[str, Any]) -> None:
        """One failed (or deferred) delivery: DEBUG always, WARNING for a reason's first."""
        first = reason not in self._counts and len(self._counts) < MAX_REASONS
        self._total += 1
        if first or reason in self._counts:
            self._counts[reason] = self._counts.get(reason, 0) + 1
        if first:
            log.warning(
                message,
                extra={**fields, "note": f"more like this are summarised every {self.interval:g}s"},
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(message, extra=fields)

    def summarise(self) -> None:
        """End the window: one WARNING with the counts by reason, if there was any failure."""
        counts, total = self._counts, self._total
        self._counts, self._total = {}, 0
        if total:
            log.warning(
                "delivery failures in the last window",
                extra={
                    "window_seconds": self.interval,
                    "failures": total,
                    "by_reason": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
                    "other_reasons": total - sum(counts.values()),
                },
            )

    async def run(self) -> None:
        """Summarise every interval until cancelled (then once more, for the last window)."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.summarise()
        finally:
            self.summarise()
