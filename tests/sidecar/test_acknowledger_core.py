"""The acknowledger against an in-memory queue: batching, retries, split batches, the order of
one message's visibility changes (no SQS, no clock waits beyond its own short retry pauses)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

import pytest

from carrier_sidecar.acknowledger import Acknowledger
from carrier_sidecar.metrics_port import NoMetrics
from tests.support.memory_queue import MemoryQueue, client_error
from tests.support.servers import eventually


@contextlib.asynccontextmanager
async def running(queue: MemoryQueue) -> AsyncIterator[Acknowledger]:
    ack = Acknowledger(queue, NoMetrics(), linger=0.001, pause=lambda _attempt: 0.001)
    task = asyncio.ensure_future(ack.run())
    try:
        yield ack
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def received(queue: MemoryQueue, count: int) -> list[tuple[str, str]]:
    """(handle, message id) of ``count`` messages, received."""
    queue.fill(f"b{i}" for i in range(count))
    messages = await queue.receive(count, 0, 30)
    return [(m["ReceiptHandle"], m["MessageId"]) for m in messages]


async def test_deletes_go_in_batches_of_ten_and_each_then_runs_once() -> None:
    queue = MemoryQueue()
    held = await received(queue, 25)
    settled: list[str] = []
    async with running(queue) as ack:
        for handle, message_id in held:
            ack.delete(handle, message_id, then=functools.partial(settled.append, message_id))
        await ack.flush()
    assert sorted(len(batch) for batch in queue.calls_of("DeleteMessageBatch")) == [5, 10, 10]
    assert sorted(settled) == sorted(m for _, m in held)
    assert queue.messages == {}


async def test_a_failed_batch_call_is_retried_and_lands() -> None:
    queue = MemoryQueue()
    held = await received(queue, 3)
    queue.fail_calls = [client_error("ServiceUnavailable", "DeleteMessageBatch", sender=False)]
    async with running(queue) as ack:
        for handle, message_id in held:
            ack.delete(handle, message_id)
        await ack.flush()
    assert len(queue.calls_of("DeleteMessageBatch")) == 2, "one failure, one retry"
    assert queue.messages == {}


async def test_an_entry_sqs_fails_as_a_server_fault_is_retried_alone() -> None:
    queue = MemoryQueue()
    (first, second) = await received(queue, 2)
    queue.fail_entries[second[0]] = "InternalError"
    async with running(queue) as ack:
        ack.delete(*first)
        ack.delete(*second)
        await ack.flush()
    assert queue.calls_of("DeleteMessageBatch") == [[first[0], second[0]], [second[0]]]
    assert queue.messages == {}


async def test_a_gone_handle_is_not_retried() -> None:
    queue = MemoryQueue()
    (held,) = await received(queue, 1)
    queue.fail_entries[held[0]] = "ReceiptHandleIsInvalid"
    async with running(queue) as ack:
        ack.delete(*held)
        await ack.flush()
    assert len(queue.calls_of("DeleteMessageBatch")) == 1
    assert len(queue.messages) == 1, "left to come back: deleting it cannot work"


async def test_a_batch_sqs_refuses_is_split_so_one_entry_cannot_sink_the_others() -> None:
    queue = MemoryQueue()
    held = await received(queue, 3)
    queue.fail_calls = [client_error("InvalidParameterValue", "ChangeMessageVisibilityBatch")]
    async with running(queue) as ack:
        for handle, message_id in held:
            ack.change_visibility(handle, 60, "backoff", message_id)
        await ack.flush()
    calls = queue.calls_of("ChangeMessageVisibilityBatch")
    assert len(calls[0]) == 3
    assert sorted(len(c) for c in calls[1:]) == [1, 1, 1], "then one call per entry"
    assert queue.in_flight() == ["b0", "b1", "b2"]
    assert {m.visible_at for m in queue.messages.values()} == {60}


async def test_a_newer_change_replaces_one_still_waiting_and_none_lands_out_of_order() -> None:
    queue = MemoryQueue()
    (held,) = await received(queue, 1)
    async with running(queue) as ack:
        ack.change_visibility(held[0], 300, "heartbeat", held[1])
        ack.release(*held)  # before the linger ends: the extension is never sent
        await ack.flush()
    assert queue.calls_of("ChangeMessageVisibilityBatch") == [[(held[0], 0)]]
    assert queue.visible() == ["b0"]


async def test_a_change_waits_for_the_one_in_flight_then_goes() -> None:
    queue = MemoryQueue()
    (held,) = await received(queue, 1)
    queue.fail_calls = [client_error("ThrottlingException", "ChangeMessageVisibilityBatch")]
    async with running(queue) as ack:
        ack.change_visibility(held[0], 300, "heartbeat", held[1])
        await eventually(lambda: queue.calls_of("ChangeMessageVisibilityBatch"), 5, "the first")
        ack.release(*held)  # the extension is being retried: the release replaces it
        await ack.flush()
    seconds = [c[0][1] for c in queue.calls_of("ChangeMessageVisibilityBatch")]
    assert seconds[0] == 300
    assert seconds[-1] == 0, "the release is the last word"
    assert queue.visible() == ["b0"]


async def test_a_heartbeat_that_loses_to_the_delete_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = MemoryQueue()
    (held,) = await received(queue, 1)
    async with running(queue) as ack:
        ack.delete(*held)
        await ack.flush()
        ack.change_visibility(held[0], 30, "heartbeat", held[1])
        await ack.flush()
    assert queue.messages == {}
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "an expected race"


async def test_a_delete_outlasting_its_attempts_goes_on_while_the_lease_lasts() -> None:
    queue = MemoryQueue()
    (held,) = await received(queue, 1)
    outage = [client_error("ExpiredToken", "DeleteMessageBatch") for _ in range(7)]
    queue.fail_calls = list(outage)
    async with running(queue) as ack:
        ack.lease_end = lambda _handle: float("inf")  # the heartbeat keeps it invisible
        ack.delete(*held)
        await ack.flush(wait=60)
    assert len(queue.calls_of("DeleteMessageBatch")) == len(outage) + 1
    assert queue.messages == {}
