"""Is SQS refusing us for a reason retrying cannot fix? What /readyz adds for SQS.

A queue deleted under a running sidecar, revoked permissions or rejected credentials fail every
call the same way. Each call is still retried with backoff (and recovers by itself when the
cause goes away), but after :data:`PERSISTENT_AFTER` such errors in a row the sidecar turns
not-ready and logs one ERROR line naming the cause; the first call that works again makes it
ready and logs that once. Transient errors (throttling, 5xx, the network) never count.
"""

from __future__ import annotations

import logging
from typing import Final

from .aws import ErrorClass, error_class, short_error

log = logging.getLogger("carrier.sqs")

PERSISTENT_AFTER: Final = 3
PERSISTENT: Final[frozenset[ErrorClass]] = frozenset({"missing", "denied", "credentials"})


class SqsHealth:
    def __init__(self, queue: str) -> None:
        self._queue = queue
        self._in_a_row = 0
        self._last: str | None = None
        self.healthy = True

    def failed(self, action: str, exc: BaseException) -> ErrorClass:
        """Count one failed call; returns its error class (for the metric)."""
        kind = error_class(exc)
        if kind not in PERSISTENT:
            return kind  # transient trouble neither counts nor breaks a run of persistent ones
        self._in_a_row += 1
        text = short_error(exc)
        if self._in_a_row >= PERSISTENT_AFTER and (self.healthy or text != self._last):
            log.error(
                "SQS keeps refusing the sidecar; not ready until it works again (still retrying)",
                extra={
                    "queue": self._queue,
                    "kind": kind,
                    "action": action,
                    "errors_in_a_row": self._in_a_row,
                    "error": text,
                },
            )
            self.healthy = False
            self._last = text
        return kind

    def succeeded(self) -> None:
        if not self.healthy:
            log.info(
                "SQS works again; ready",
                extra={"queue": self._queue, "after_errors": self._in_a_row},
            )
        self.healthy = True
        self._in_a_row = 0
        self._last = None
