"""The delivery engine: every received message is held here until it is acknowledged.

A held message is POSTed (standard queues: at once; FIFO: in its group's turn), and its outcome
becomes exactly one acknowledgement: delete, visibility from Retry-After or backoff, or release.
Whatever is still held when the sidecar stops is released, so nothing waits out a visibility
timeout in a dead pod.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from .acknowledger import Acknowledger
from .backoff import failure_visibility, retry_after_visibility
from .failurelog import FailureLog
from .fifo import GroupSequencer
from .heartbeat import Heartbeat
from .messages import Held, Message
from .metrics_port import MetricsPort
from .outcome import Delivered, Failed, Outcome, RetryAt, kind
from .settings import SQS_MAX_VISIBILITY, Settings
from .tasks import LogThrottle, printable

log = logging.getLogger("carrier.delivery")


class WebhookPort(Protocol):
    """What the engine asks of the webhook: :class:`webhook_client.WebhookClient` implements it."""

    def unrouted_task(self, message: Message) -> str | None: ...

    async def post(self, message: Message) -> Outcome: ...


class DeliveryEngine:
    def __init__(
        self,
        settings: Settings,
        webhook_client: WebhookPort,
        ack: Acknowledger,
        heartbeat: Heartbeat,
        meter: MetricsPort,
        failures: FailureLog | None = None,
    ) -> None:
        self._settings = settings
        self._failures = failures or FailureLog()
        self._webhook_client = webhook_client
        self._ack = ack
        self._heartbeat = heartbeat
        self._meter = meter
        self._held: dict[str, Held] = {}
        self._posting: set[str] = set()  # handles whose POST has started
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fifo = GroupSequencer(self) if settings.is_fifo else None
        self._unrouted_log = LogThrottle()
        self.stopping = False  # no new receives
        self.releasing = False  # no new POSTs: a message that gets a permit goes back instead

    @property
    def held(self) -> int:
        return len(self._held)

    def accept(
        self,
        messages: list[Message],
        received_at: float,
        give: Callable[[], None],
        gate: asyncio.Semaphore,
    ) -> None:
        """Take a receive's messages; each holds one slot until its acknowledgement."""
        now = time.time()
        batch: list[Held] = []
        for message in messages:
            handle = message.get("ReceiptHandle")
            if not isinstance(handle, str) or not handle or handle in self._held:
                log.error(
                    "SQS returned a message without a usable receipt handle; skipped",
                    extra={"message_id": message.get("MessageId")},
                )
                give()
                continue
            held = Held(message, handle, str(message.get("MessageId", "")), give, received_at, gate)
            self._held[handle] = held
            self._heartbeat.track(handle, held.message_id, received_at)
            sent = message.get("Attributes", {}).get("SentTimestamp")
            if sent is not None and sent.isascii() and sent.isdigit():
                self._meter.queue_wait(max(0.0, now - int(sent) / 1000))
            batch.append(held)
        self._meter.received(len(batch))
        if self._fifo is not None:
            self._fifo.accept(batch)
        else:
            for held in batch:
                self.spawn(self.run_one(held))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_one(self, held: Held) -> bool:
        """Deliver one held message and acknowledge it; True if the webhook took it."""
        task = self._webhook_client.unrouted_task(held.message)
        if task is not None:
            self._refuse_unrouted(held, task)
            return False
        try:
            async with held.gate:
                if self.releasing:
                    self.release(held)
                    return False
                self._meter.in_flight(1)
                self._posting.add(held.handle)
                started = time.monotonic()
                try:
                    outcome = await self._webhook_client.post(held.message)
                except Exception as exc:  # a bug must not strand the message or its slot
                    log.exception("delivery crashed", extra={"message_id": held.message_id})
                    outcome = Failed(f"internal error: {exc!r}")
                finally:
                    self._posting.discard(held.handle)
                    self._meter.in_flight(-1)
                self._meter.delivered(kind(outcome), time.monotonic() - started)
                self._settle(held, outcome)
                return isinstance(outcome, Delivered)
        except asyncio.CancelledError:
            self.release(held)  # cut short by shutdown, waiting for a permit or mid-POST
            raise

    def _settle(self, held: Held, outcome: Outcome) -> None:
        if self._held.pop(held.handle, None) is None:
            return
        held.give()
        if isinstance(outcome, Delivered):
            # The lease lives until SQS has answered the delete: a delete that is slow to land
            # must not let the visibility run out and the message go out again after its 2xx.
            handle = held.handle
            self._ack.delete(handle, held.message_id, then=lambda: self._heartbeat.untrack(handle))
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "delivered", extra={"message_id": held.message_id, "status": outcome.status}
                )
            return
        # A visibility change sets the visibility itself; an extension landing after it would
        # only undo it, so the lease ends here.
        self._heartbeat.untrack(held.handle)
        if isinstance(outcome, RetryAt):
            count = _receive_count(held.message)
            wanted = retry_after_visibility(self._settings, outcome.delay, count)
            delay = min(wanted, _left_in_12h(held))
            self._ack.change_visibility(held.handle, delay, "retry_after", held.message_id)
            self._failures.failed(
                "webhook asked to retry later",
                f"HTTP {outcome.status} with Retry-After",
                {
                    "message_id": held.message_id,
                    "status": outcome.status,
                    "retry_after": outcome.delay,
                    "receive_count": count,
                    "retry_in": delay,
                },
            )
        else:
            count = _receive_count(held.message)
            visibility = failure_visibility(self._settings, count)
            if visibility is not None:
                visibility = min(visibility, _left_in_12h(held))
            self._failures.failed(
                "delivery failed",
                outcome.reason,
                {
                    "message_id": held.message_id,
                    "status": outcome.status,
                    "reason": outcome.reason,
                    "receive_count": count,
                    "retry_in": visibility,
                },
            )
            if visibility is not None:
                self._ack.change_visibility(held.handle, visibility, "backoff", held.message_id)

    def _refuse_unrouted(self, held: Held, task: str) -> None:
        """POST a message naming an unlisted task nowhere: it takes the failure backoff, so the
        queue's redrive policy moves it to the DLQ in time. Logged at most once a minute per
        name (anyone who can send picks the names)."""
        if self._held.pop(held.handle, None) is None:
            return
        held.give()
        self._heartbeat.untrack(held.handle)
        self._meter.unrouted_task()
        count = _receive_count(held.message)
        visibility = failure_visibility(self._settings, count)
        if visibility is not None:
            visibility = min(visibility, _left_in_12h(held))
            self._ack.change_visibility(held.handle, visibility, "backoff", held.message_id)
        held_back = self._unrouted_log.admit(task, time.monotonic())
        if held_back is not None:
            log.error(
                "message names a task that CARRIER_WEBHOOK_TASKS does not list; not delivered",
                extra={
                    "task": printable(task),
                    "message_id": held.message_id,
                    "receive_count": count,
                    "retry_in": visibility,
                    "suppressed": held_back,
                },
            )

    def release(self, held: Held) -> None:
        """Give a held message back to the queue at once (visibility 0)."""
        if self._held.pop(held.handle, None) is None:
            return
        self._heartbeat.untrack(held.handle)
        held.give()
        self._ack.release(held.handle, held.message_id)

    def stop_receiving(self, *, deliver_held: bool) -> None:
        """No new receives. With ``deliver_held`` (a preStop drain: the worker is serving until
        the drain answers) the messages already held are still POSTed; otherwise none starts."""
        self.stopping = True
        self.releasing = not deliver_held

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the deliveries running (and, after a preStop drain,
        for the held messages to be delivered too), then release whatever is left.

        Delivering what is held, rather than releasing it, spares each of those messages a
        receive: released, it comes back to the next pod with one more receive count, which is
        one step nearer a low ``maxReceiveCount`` for a message with nothing wrong with it.
        """
        self.stopping = True
        if self.releasing:
            self._release_unposted()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            if pending:
                log.warning(
                    "shutdown timeout reached; releasing deliveries still running",
                    extra={"deliveries": len(pending)},
                )
                self.releasing = True
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        for held in list(self._held.values()):
            self.release(held)

    def _release_unposted(self) -> None:
        """Received, never POSTed: back to the queue at once."""
        for held in list(self._held.values()):
            if held.handle not in self._posting:
                self.release(held)


def _left_in_12h(held: Held) -> int:
    """SQS rejects a visibility that ends more than 12 h after the receive (1 s of margin)."""
    return max(0, math.floor(SQS_MAX_VISIBILITY - (time.monotonic() - held.received_at)) - 1)


def _receive_count(message: Message) -> int:
    text = str(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 1
