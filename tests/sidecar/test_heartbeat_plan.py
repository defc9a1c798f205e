"""When the heartbeat extends a lease, by how much, and where it stops (fake clock, an in-memory
queue, no I/O)."""

from __future__ import annotations

from carrier_sidecar.acknowledger import Acknowledger
from carrier_sidecar.heartbeat import Heartbeat
from carrier_sidecar.liveness import Liveness
from carrier_sidecar.metrics_port import NoMetrics
from tests.support.memory_queue import MemoryQueue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def sent(ack: Acknowledger, queue: MemoryQueue) -> dict[str, int]:
    """The visibility changes the acknowledger sends for what the heartbeat asked so far."""
    before = len(queue.calls)
    await ack.flush()
    return {handle: seconds for _, entries in queue.calls[before:] for handle, seconds in entries}


async def make(
    visibility: float, enabled: bool = True
) -> tuple[Heartbeat, Acknowledger, Clock, MemoryQueue, str]:
    queue = MemoryQueue()
    queue.send("b")
    (message,) = await queue.receive(1, 0, visibility)
    ack = Acknowledger(queue, NoMetrics())
    clock = Clock()
    beat = Heartbeat(ack, visibility, enabled=enabled, clock=clock)
    return beat, ack, clock, queue, message["ReceiptHandle"]


async def test_extends_when_a_third_is_left_and_stops_when_untracked() -> None:
    beat, ack, clock, queue, h1 = await make(30)
    beat.track(h1, "m1", received_at=0.0)
    assert beat.beat() == 20.0
    assert await sent(ack, queue) == {}
    clock.now = 20.0
    assert beat.beat() == 20.0  # extended to 50; next due at 40
    assert await sent(ack, queue) == {h1: 30}
    beat.untrack(h1)
    clock.now = 40.0
    assert beat.beat() is None
    assert await sent(ack, queue) == {}


async def test_never_beyond_twelve_hours_since_the_receive() -> None:
    beat, ack, clock, queue, h1 = await make(30)
    beat.track(h1, "m1", received_at=0.0)
    clock.now = 43200 - 12
    beat.beat()
    assert await sent(ack, queue) == {h1: 12}
    clock.now = 43200 - 0.5
    assert beat.beat() is None, "nothing left to give: the lease is dropped"
    assert await sent(ack, queue) == {}


async def test_off_or_too_short_to_keep_up() -> None:
    for heartbeat in ((await make(30, enabled=False))[0], (await make(0.5))[0]):
        heartbeat.track("h1", "m1", received_at=0.0)
        assert heartbeat.beat() is None


def test_liveness_parked_loops_count_as_alive() -> None:
    clock = Clock()
    live = Liveness(2, stale_after=10, clock=clock)
    clock.now = 1000
    assert live.live(), "loops that have not started yet (gate closed) are waiting, not stuck"
    live.park(0, False)
    live.park(1, False)
    assert live.live()
    clock.now = 1011
    assert not live.live()
    live.stamp(0)
    live.park(1, True)
    assert live.live()
    clock.now = 1030
    assert not live.live(), "loop 0 stopped stamping"
