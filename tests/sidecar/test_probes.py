"""The probe server over real HTTP: /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from carrier_sidecar.metrics import Metrics
from carrier_sidecar.probes import ProbeServer


@dataclass
class Flags:
    live: bool = True
    ready: bool = False


@dataclass
class Probed:
    server: ProbeServer
    metrics: Metrics
    flags: Flags

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


@pytest.fixture
async def probed() -> AsyncIterator[Probed]:
    flags = Flags()
    metrics = Metrics()
    server = ProbeServer(("127.0.0.1", 0), metrics, lambda: flags.live, lambda: flags.ready)
    await server.start()
    try:
        yield Probed(server, metrics, flags)
    finally:
        await server.stop()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with session.get(url) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def test_port_zero_binds_a_free_port(probed: Probed) -> None:
    assert probed.server.port > 0


async def test_healthz_and_readyz_follow_their_checks(
    probed: Probed, session: aiohttp.ClientSession
) -> None:
    status, ctype, body = await get(session, probed.url("/healthz"))
    assert (status, json.loads(body)) == (200, {"live": True})
    assert ctype.startswith("application/json")
    status, _, body = await get(session, probed.url("/readyz"))
    assert status == 503
    assert json.loads(body) == {"ready": False, "reason": "ready check returned false"}

    probed.flags.ready = True
    probed.flags.live = False

    status, _, body = await get(session, probed.url("/readyz"))
    assert (status, json.loads(body)) == (200, {"ready": True})
    status, _, body = await get(session, probed.url("/healthz"))
    assert status == 503
    assert json.loads(body)["live"] is False


async def test_a_check_that_raises_answers_503_with_the_reason(
    session: aiohttp.ClientSession,
) -> None:
    def broken() -> bool:
        raise RuntimeError("queue not resolved")

    server = ProbeServer(("127.0.0.1", 0), Metrics(), broken, broken)
    await server.start()
    try:
        async with session.get(f"http://127.0.0.1:{server.port}/readyz") as response:
            assert response.status == 503
            body = await response.json()
    finally:
        await server.stop()
    assert body["reason"] == "ready check raised RuntimeError: queue not resolved"


async def test_head_works_on_every_endpoint(probed: Probed, session: aiohttp.ClientSession) -> None:
    probed.flags.ready = True
    for path in ("/healthz", "/readyz", "/metrics"):
        async with session.head(probed.url(path)) as response:
            assert response.status == 200, path
            assert await response.read() == b""


async def test_unknown_path_is_404(probed: Probed, session: aiohttp.ClientSession) -> None:
    async with session.get(probed.url("/nope")) as response:
        assert response.status == 404


def record_some_traffic(metrics: Metrics) -> None:
    metrics.received(3)
    metrics.queue_wait(1.5)
    metrics.queue_wait(-2.0)  # SentTimestamp ahead of our clock: counted as 0
    metrics.in_flight(3)
    metrics.delivered("success", 0.02)
    metrics.delivered("success", 0.04)
    metrics.delivered("retry_after", 0.01)
    metrics.delivered("timeout", 60.0)
    metrics.deleted(2)
    metrics.visibility_changed(1, "retry_after")
    metrics.visibility_changed(4, "heartbeat")
    metrics.sqs_request("ReceiveMessage", "ok")
    metrics.sqs_request("ReceiveMessage", "ok")
    metrics.sqs_request("DeleteMessageBatch", "error")
    metrics.sqs_request("ChangeMessageVisibility", "ok")  # not pre-bound: bound on first use
    metrics.in_flight(-3)
    metrics.in_flight(1)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_expose_the_documented_series(
    probed: Probed, session: aiohttp.ClientSession
) -> None:
    record_some_traffic(probed.metrics)

    status, ctype, text = await get(session, probed.url("/metrics"))

    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    found = samples(text)
    assert found[("carrier_messages_received_total", ())] == 3
    assert found[("carrier_deliveries_total", (("outcome", "success"),))] == 2
    assert found[("carrier_deliveries_total", (("outcome", "retry_after"),))] == 1
    assert found[("carrier_deliveries_total", (("outcome", "failure"),))] == 0
    assert found[("carrier_deliveries_total", (("outcome", "timeout"),))] == 1
    assert found[("carrier_delivery_duration_seconds_count", (("outcome", "success"),))] == 2
    assert found[
        ("carrier_delivery_duration_seconds_sum", (("outcome", "success"),))
    ] == pytest.approx(0.06)
    assert found[("carrier_delivery_duration_seconds_bucket", (("le", "0.025"), ("outcome", "success")))] == 1  # fmt: skip
    assert found[("carrier_queue_wait_seconds_count", ())] == 2
    assert found[("carrier_queue_wait_seconds_sum", ())] == pytest.approx(1.5)
    assert found[("carrier_messages_deleted_total", ())] == 2
    assert found[("carrier_visibility_changes_total", (("reason", "heartbeat"),))] == 4
    assert found[("carrier_visibility_changes_total", (("reason", "retry_after"),))] == 1
    assert found[("carrier_visibility_changes_total", (("reason", "release"),))] == 0
    sqs = "carrier_sqs_requests_total"
    assert found[(sqs, (("action", "ReceiveMessage"), ("outcome", "ok")))] == 2
    assert found[(sqs, (("action", "DeleteMessageBatch"), ("outcome", "error")))] == 1
    assert found[(sqs, (("action", "ChangeMessageVisibility"), ("outcome", "ok")))] == 1
    assert found[(sqs, (("action", "GetQueueUrl"), ("outcome", "ok")))] == 0  # pre-bound
    assert found[("carrier_in_flight_messages", ())] == 1
    assert found[("process_resident_memory_bytes", ())] > 0
    assert not any(name.endswith("_created") for name, _ in found)


async def test_metrics_speak_openmetrics_when_asked(
    probed: Probed, session: aiohttp.ClientSession
) -> None:
    probed.metrics.received(1)
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with session.get(probed.url("/metrics"), headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = await response.text()
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["carrier_messages_received"].samples[0].value == 1


async def test_two_instances_do_not_share_series() -> None:
    first, second = Metrics(), Metrics()
    first.received(5)
    assert first.snapshot()["messages_received"] == 5
    assert second.snapshot()["messages_received"] == 0


def test_snapshot_flattens_counters_for_the_stat_log() -> None:
    metrics = Metrics()
    record_some_traffic(metrics)
    assert metrics.snapshot() == {
        "messages_received": 3,
        "deliveries_success": 2,
        "deliveries_retry_after": 1,
        "deliveries_failure": 0,
        "deliveries_timeout": 1,
        "messages_deleted": 2,
        "visibility_changes_retry_after": 1,
        "visibility_changes_backoff": 0,
        "visibility_changes_heartbeat": 4,
        "visibility_changes_release": 0,
        "sqs_requests_ok": 3,
        "sqs_requests_error": 1,
        "in_flight_messages": 1,
        "unrouted_tasks": 0,
    }


async def test_stop_is_prompt_and_idempotent_with_a_keepalive_client(
    session: aiohttp.ClientSession,
) -> None:
    server = ProbeServer(("127.0.0.1", 0), Metrics(), lambda: True, lambda: True)
    await server.start()
    port = server.port
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        await response.read()  # the connection stays open in the client's pool

    await asyncio.wait_for(server.stop(), 5)
    await server.stop()  # idempotent

    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as fresh, fresh.get(f"http://127.0.0.1:{port}/healthz"):
            pass


async def test_start_fails_on_a_taken_port() -> None:
    first = ProbeServer(("127.0.0.1", 0), Metrics(), lambda: True, lambda: True)
    await first.start()
    try:
        second = ProbeServer(("127.0.0.1", first.port), Metrics(), lambda: True, lambda: True)
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await second.start()
        await second.stop()  # nothing to stop, and no error
    finally:
        await first.stop()
