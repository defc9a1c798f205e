"""Long-poll loops, each with its own budget: ``workers`` POSTs at a time, plus one batch ahead.

A receiver holds at most ``workers + batch`` messages and asks for a full batch as soon as a
batch's worth of slots is free: few SQS calls per message, while a slow delivery only ever holds
one POST permit (no head-of-line blocking). Messages waiting for a permit are held like any
other: kept invisible by the heartbeat, released at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .aws import short_error
from .backoff import doubling, equal_jitter
from .delivery import DeliveryEngine
from .liveness import Liveness
from .settings import Settings
from .sqs import SqsPort

log = logging.getLogger("carrier.receiver")

RETRY_BASE = 0.5
RETRY_CAP = 20.0
SHORT_POLL_FLOOR = 1.0  # with a wait time under 1s, an empty queue is polled at most once a second


class Slots:
    """A counter of free slots (messages a receiver may hold), handed out a batch at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._freed = asyncio.Event()

    async def take(self, count: int) -> int:
        """Wait until ``count`` slots are free (at most the size) and take them."""
        count = min(count, self.size)
        while self.free < count:
            self._freed.clear()
            await self._freed.wait()
        self.free -= count
        return count

    def give(self, count: int = 1) -> None:
        self.free += count
        self._freed.set()


async def receive_loop(
    index: int,
    settings: Settings,
    port: SqsPort,
    engine: DeliveryEngine,
    liveness: Liveness,
) -> None:
    batch = settings.sqs_batch_size
    slots = Slots(settings.sqs_receiver_workers + batch)
    posts = asyncio.Semaphore(settings.sqs_receiver_workers)
    give = slots.give
    visibility = settings.sqs_visibility_timeout
    failures = 0
    while True:
        liveness.park(index, True)
        if engine.stopping:  # shutting down: the receive that just landed was the last
            return
        wanted = await slots.take(batch)
        liveness.park(index, False)
        # SQS starts the visibility clock somewhere between the ask and the answer's arrival; the
        # lease counts from the ask, so a slow answer cannot make the heartbeat extend too late.
        asked_at = time.monotonic()
        try:
            messages = await port.receive(wanted, settings.sqs_wait_time, visibility)
        except asyncio.CancelledError:
            slots.give(wanted)
            raise
        except Exception as exc:
            slots.give(wanted)
            failures += 1
            pause = equal_jitter(doubling(RETRY_BASE, RETRY_CAP, failures - 1))
            log.warning(
                "ReceiveMessage failed; retrying",
                extra={
                    "receiver": index,
                    "error": short_error(exc),
                    "attempt": failures,
                    "retry_in": round(pause, 2),
                },
            )
            liveness.stamp(index)
            await asyncio.sleep(pause)
            continue
        if failures:
            log.info(
                "ReceiveMessage works again", extra={"receiver": index, "after_failures": failures}
            )
            failures = 0
        liveness.stamp(index)
        if len(messages) < wanted:
            slots.give(wanted - len(messages))
        if messages:
            engine.accept(messages, asked_at, give, posts)
        elif settings.sqs_wait_time < SHORT_POLL_FLOOR:
            await asyncio.sleep(SHORT_POLL_FLOOR - settings.sqs_wait_time)  # no busy loop
