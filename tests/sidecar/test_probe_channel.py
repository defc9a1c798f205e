"""The probe process's logic in-process: the frames, the reported state, the forwarding.

The real fork, signals and port are tests/sidecar/test_probe_process.py's; here both ends of a
real socketpair run in the test's loop, so what the child would send the sidecar is read back.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from carrier_sidecar.probe_channel import (
    MAX_FRAME,
    answer_frame,
    encode,
    read_frame,
    request_of,
    state_frame,
)
from carrier_sidecar.probe_checks import Outcome
from carrier_sidecar.probe_child import MAX_ACCEPTS, STALE_AFTER, Forwarder, ReportedState
from carrier_sidecar.probe_http import Answer, Request
from carrier_sidecar.probe_link import ProbeLink
from carrier_sidecar.probe_process import ProbeProcess


@dataclass
class Ends:
    """The child's writer (what the Forwarder writes) and the sidecar's reader of it."""

    writer: asyncio.StreamWriter
    sidecar: asyncio.StreamReader

    async def requests(self, count: int) -> list[Request]:
        got = []
        for _ in range(count):
            frame = await asyncio.wait_for(read_frame(self.sidecar), 5)
            assert frame is not None
            got.append(frame[0])
        return [request_of(head) for head in got]


@pytest.fixture
async def ends() -> AsyncIterator[Ends]:
    child, sidecar = socket.socketpair()
    _, writer = await asyncio.open_connection(sock=child)
    reader, sidecar_writer = await asyncio.open_connection(sock=sidecar)
    yield Ends(writer, reader)
    writer.close()
    sidecar_writer.close()


def metrics_request(accept: str = "") -> Request:
    return Request("GET", "/metrics", {"accept": accept} if accept else {}, "10.0.0.7")


async def test_frames_round_trip_and_a_broken_one_reads_as_closed() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(answer_frame(7, Answer(200, b"a\nb", "text/plain", (("X-A", "1"),))))
    reader.feed_data(state_frame(Outcome(True), Outcome(False, "ready check returned false")))
    reader.feed_data(struct.pack(">I", MAX_FRAME + 1))
    frame = await read_frame(reader)
    assert frame is not None
    head, body = frame
    assert (head["k"], head["id"], head["status"], body) == ("a", 7, 200, b"a\nb")
    state = await read_frame(reader)
    assert state is not None
    assert state[0]["ready"] == [False, "ready check returned false"]
    assert await read_frame(reader) is None, "an oversized frame ends the channel"
    truncated = asyncio.StreamReader()
    truncated.feed_data(encode({"k": "s"})[:-2])
    truncated.feed_eof()
    assert await read_frame(truncated) is None


def test_reported_state_answers_what_was_said_until_it_goes_stale() -> None:
    now = [100.0]
    state = ReportedState(clock=lambda: now[0])
    request = Request("GET", "/healthz", {}, None)
    assert state.live(request).status == 200  # starting: parked loops are alive
    assert state.ready(request).status == 503
    state.update({"live": [True, ""], "ready": [True, ""]})
    assert (state.live(request).status, state.ready(request).status) == (200, 200)
    state.update({"live": [False, "live check returned false"], "ready": [True, ""]})
    assert json.loads(state.live(request).body)["reason"] == "live check returned false"
    state.update({"live": [True, ""], "ready": [True, ""]})
    now[0] += STALE_AFTER + 1
    stale = state.live(request)
    assert stale.status == 503
    assert "sent nothing for 11s" in json.loads(stale.body)["reason"]


async def test_concurrent_scrapes_share_one_forwarded_request(ends: Ends) -> None:
    """The first scrape goes out at once; those arriving while it is out would get a rendering
    begun before they came, so they wait together for the next one, sent when it lands: a
    wave of scrapes costs the sidecar two renders, not one per scrape."""
    forward = Forwarder(ends.writer)
    first = forward.shared(metrics_request())
    (sent,) = await ends.requests(1)
    assert (sent.path, sent.remote) == ("/metrics", "10.0.0.7")
    later = [forward.shared(metrics_request()) for _ in range(500)]
    assert len({id(f) for f in later}) == 1
    assert later[0] is not first
    other_format = forward.shared(metrics_request("application/openmetrics-text"))
    (sent_other,) = await ends.requests(1)  # another format: its own rendering, at once
    assert sent_other.headers == {"accept": "application/openmetrics-text"}
    forward.answered({"id": 1, "status": 200, "content_type": "text/plain", "headers": []}, b"1")
    assert (await first).body == b"1"
    (sent_next,) = await ends.requests(1)  # the waiting ones go out now, as one request
    assert sent_next.path == "/metrics"
    assert not later[0].done()
    forward.answered({"id": 3, "status": 200, "content_type": "text/plain", "headers": []}, b"3")
    assert (await later[0]).body == b"3"
    assert not other_format.done()


async def test_a_flood_of_distinct_accept_headers_is_not_a_flood_of_renders(ends: Ends) -> None:
    forward = Forwarder(ends.writer)
    answers = [forward.shared(metrics_request(f"x/junk-{i}")) for i in range(100)]
    sent = await ends.requests(MAX_ACCEPTS)
    assert [r.headers["accept"] for r in sent] == [f"x/junk-{i}" for i in range(MAX_ACCEPTS)]
    with pytest.raises(TimeoutError):  # the other 96 never reached the sidecar
        await asyncio.wait_for(read_frame(ends.sidecar), 0.2)
    refused = answers[MAX_ACCEPTS:]
    assert all(a.done() and a.result().status == 503 for a in refused)
    assert "Accept headers" in json.loads(refused[0].result().body)["reason"]
    assert not any(a.done() for a in answers[:MAX_ACCEPTS])
    again = forward.shared(metrics_request("x/junk-0"))  # a format already out still queues
    assert not again.done()


async def test_when_the_sidecar_goes_what_waits_is_answered_503(ends: Ends) -> None:
    forward = Forwarder(ends.writer)
    drain = forward.one(Request("GET", "/drain", {}, None))
    scrape = forward.shared(metrics_request())
    queued = forward.shared(metrics_request())
    forward.fail_all()
    answers = [await drain, await scrape, await queued]
    assert [a.status for a in answers] == [503, 503, 503]
    after = forward.one(Request("GET", "/drain", {}, None))
    assert (await after).status == 503, "nothing is sent once the channel is gone"


async def test_the_link_warns_once_for_a_check_that_keeps_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The link evaluates the checks four times a second: a broken check must not become four
    warnings a second (the in-loop server warns per request, as the kubelet asks)."""
    ours, theirs = socket.socketpair()
    link = ProbeLink(ProbeProcess(0, ours), 9102)
    calls = 0

    def broken() -> bool:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom" if calls < 4 else "bang")

    child, child_writer = await asyncio.open_connection(sock=theirs)
    running = asyncio.ensure_future(link.run({}, lambda: True, broken))
    try:
        states = []
        for _ in range(6):
            frame = await asyncio.wait_for(read_frame(child), 5)
            assert frame is not None
            states.append(frame[0]["ready"])
    finally:
        running.cancel()
        child_writer.close()
        await link.close(0.1)
    assert states[0] == [False, "ready check raised RuntimeError: boom"]
    assert states[-1] == [False, "ready check raised RuntimeError: bang"]
    warned = [r.getMessage() for r in caplog.records if r.name == "carrier.probes"]
    assert warned == ["probe check failed"] * 2, "one for boom, one when it became bang"
