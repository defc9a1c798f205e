"""The delivery engine against an in-memory queue and a scripted webhook: each outcome becomes
exactly one acknowledgement, FIFO groups keep their order, and a stop releases or delivers what
is held (no SQS, no HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from carrier_sidecar.acknowledger import Acknowledger
from carrier_sidecar.delivery import DeliveryEngine
from carrier_sidecar.heartbeat import Heartbeat
from carrier_sidecar.messages import Message
from carrier_sidecar.metrics_port import NoMetrics
from carrier_sidecar.outcome import Delivered, Failed, Outcome, RetryAt
from carrier_sidecar.settings import Settings
from tests.support.memory_queue import MemoryQueue
from tests.support.servers import eventually


@dataclass
class ScriptedWebhook:
    """Answers each POST by body: ``answers[body]`` (default 2xx); ``hold`` keeps POSTs open."""

    answers: dict[str, Outcome] = field(default_factory=dict)
    hold: asyncio.Event | None = None
    posted: list[str] = field(default_factory=list)

    def unrouted_task(self, message: Message) -> str | None:
        return None

    async def post(self, message: Message) -> Outcome:
        self.posted.append(message["Body"])
        if self.hold is not None:
            await self.hold.wait()
        return self.answers.get(message["Body"], Delivered(200))


@dataclass
class Rig:
    queue: MemoryQueue
    webhook: ScriptedWebhook
    engine: DeliveryEngine
    ack: Acknowledger
    slots: list[int]

    async def take(self, count: int, gate: asyncio.Semaphore | None = None) -> None:
        messages = await self.queue.receive(count, 0, 30)
        give: Callable[[], None] = lambda: self.slots.append(1)  # noqa: E731
        # Received now on the monotonic clock: 0.0 would be "received at boot", so on a machine
        # up for over 12 h every visibility change would be capped at 0 (SQS's 12 h limit).
        self.engine.accept(messages, time.monotonic(), give, gate or asyncio.Semaphore(10))

    async def settled(self, count: int) -> None:
        await eventually(lambda: len(self.slots) == count, 5, f"{count} slots given back")
        await self.ack.flush()


@contextlib.asynccontextmanager
async def rig(**fields: Any) -> AsyncIterator[Rig]:
    settings = Settings.from_fields({"sqs_queue_name": "q", **fields})
    queue = MemoryQueue()
    ack = Acknowledger(queue, NoMetrics(), linger=0.001, pause=lambda _attempt: 0.001)
    heartbeat = Heartbeat(ack, 30, enabled=False)
    webhook = ScriptedWebhook()
    engine = DeliveryEngine(settings, webhook, ack, heartbeat, NoMetrics())
    runner = asyncio.ensure_future(ack.run())
    try:
        yield Rig(queue, webhook, engine, ack, [])
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_each_outcome_is_one_acknowledgement() -> None:
    async with rig(retry_backoff_base=4, retry_backoff_max=4) as r:
        r.queue.fill(["ok", "later", "broken"])
        r.webhook.answers = {"later": RetryAt(120, 503), "broken": Failed("HTTP 500", 500)}
        await r.take(3)
        await r.settled(3)
        assert sorted(r.webhook.posted) == ["broken", "later", "ok"]
        left = {m.body: m.visible_at for m in r.queue.messages.values()}
        assert "ok" not in left, "a 2xx is deleted"
        assert left["later"] == 120, "Retry-After sets the visibility"
        assert 2 <= left["broken"] <= 4, "a failure takes the jittered backoff"
        assert len(r.queue.calls_of("DeleteMessageBatch")) == 1
        assert r.engine.held == 0


async def test_a_stop_releases_what_was_never_posted() -> None:
    async with rig() as r:
        r.queue.fill(f"m{i}" for i in range(4))
        r.webhook.hold = asyncio.Event()
        await r.take(4, gate=asyncio.Semaphore(1))
        await eventually(lambda: r.webhook.posted, 5, "the first POST")
        r.engine.stop_receiving(deliver_held=False)
        stopping = asyncio.ensure_future(r.engine.drain(5))
        await eventually(lambda: len(r.slots) == 3, 5, "the three unposted released")
        assert r.queue.visible() == ["m1", "m2", "m3"]
        r.webhook.hold.set()
        await stopping
        await r.ack.flush()
        assert r.webhook.posted == ["m0"], "nothing new started after the stop"
        assert r.queue.visible() == ["m1", "m2", "m3"]


async def test_a_drain_delivers_what_is_held_to_the_serving_worker() -> None:
    async with rig() as r:
        r.queue.fill(f"m{i}" for i in range(4))
        await r.take(4, gate=asyncio.Semaphore(1))
        r.engine.stop_receiving(deliver_held=True)
        await r.engine.drain(5)
        await r.ack.flush()
        assert r.webhook.posted == ["m0", "m1", "m2", "m3"]
        assert r.queue.messages == {}, "all delivered and deleted, none released"


async def test_a_delivery_past_the_shutdown_timeout_is_released() -> None:
    async with rig() as r:
        r.queue.fill(["stuck"])
        r.webhook.hold = asyncio.Event()  # never set: the POST outlives the timeout
        await r.take(1)
        await eventually(lambda: r.webhook.posted, 5, "the POST")
        r.engine.stop_receiving(deliver_held=True)
        await r.engine.drain(0.05)
        await r.ack.flush()
        assert r.queue.visible() == ["stuck"], "released, visible to the next consumer at once"
        assert r.slots == [1]


async def test_fifo_a_failure_releases_its_group_and_never_delivers_ahead() -> None:
    async with rig(sqs_queue_name="q.fifo", retry_backoff_base=4, retry_backoff_max=4) as r:
        for body in ("a1", "a2", "a3"):
            r.queue.send(body, MessageGroupId="a")
        r.queue.send("b1", MessageGroupId="b")
        r.webhook.answers = {"a1": Failed("HTTP 500", 500)}
        await r.take(4)
        await r.settled(4)
        assert r.webhook.posted.count("a2") == 0, "a2 must not go ahead of a1"
        assert "b1" in r.webhook.posted, "another group is not held back"
        assert sorted(r.queue.visible()) == ["a2", "a3"], "the group's rest goes back in order"
        assert r.queue.in_flight() == ["a1"]
