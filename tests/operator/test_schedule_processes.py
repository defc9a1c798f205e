"""Periodic tasks across real processes: two ``carrier-operator`` replicas with a Lease, killed
at the worst moments of a tick, and a real ``carrier-sidecar`` routing each task to its path.

The operators' schedule clock is real time shifted by the test-only
``CARRIER_OPERATOR_SCHEDULE_CLOCK_OFFSET_FOR_TESTS``, so that their next minute boundary falls
some seconds after they start instead of up to a minute later. It is shifted, never sped up:
both replicas share the offset, leases and deadlines run at real speed, and no tick is faked.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest

from carrier_operator.binding import render_env
from carrier_operator.events import EventPoster
from carrier_operator.kubeapi import KubeAPI
from carrier_operator.leader import SoleReplica
from carrier_operator.queues import QueueReader
from carrier_operator.scheduler import Scheduler
from tests.operator.test_scheduler import Clock, LiveIndex, drain, ticks
from tests.support.kube import BINDINGS, FakeKube, binding_object
from tests.support.operators import Fleet, fleet_cluster, kill_on, operators
from tests.support.servers import MotoServer, WebhookRecorder, eventually
from tests.support.sidecars import FAST, sidecar_process

NAMESPACE = "team-a"
TICK_AFTER = 25.0  # seconds after the replicas start that their clock meets a minute boundary
FAST_LEASE = {
    "CARRIER_OPERATOR_LEASE_DURATION": "4",
    "CARRIER_OPERATOR_RENEW_DEADLINE": "3",
    "CARRIER_OPERATOR_RETRY_PERIOD": "1",
}


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fleet_cluster(NAMESPACE) as api:
        yield api


def shifted_clock() -> tuple[dict[str, str], datetime]:
    """(env, tick): with this env, the replicas' clock reaches the minute boundary ``tick``
    ``TICK_AFTER`` real seconds from now (and their Lease runs fast)."""
    now = time.time()
    tick = math.ceil((now + 120) / 60) * 60  # a minute boundary at least two minutes ahead
    offset = tick - (now + TICK_AFTER)
    env = {**FAST_LEASE, "CARRIER_OPERATOR_SCHEDULE_CLOCK_OFFSET_FOR_TESTS": f"{offset:.3f}"}
    return env, datetime.fromtimestamp(tick, UTC)


def _rfc(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec(moto: MotoServer, queue: str) -> dict[str, Any]:
    return {
        "queue": {"name": queue, "region": "us-east-1", "endpoint": moto.endpoint},
        "webhook": {"port": 8080},
        "queueCheck": False,
        "schedules": [
            {
                "name": "every-minute",
                "schedule": "* * * * *",
                "path": "/tasks/minute",
                "startingDeadlineSeconds": 40,
            }
        ],
    }


def _schedule(kube: FakeKube) -> dict[str, Any]:
    items = kube.status(BINDINGS, NAMESPACE, "orders").get("schedules") or [{}]
    return dict(items[0])


def _writes_schedules(text: str) -> Any:
    def matches(request: kmock.Request) -> bool:
        body = json.dumps(request.data) if request.data is not None else ""
        return request.url.path.endswith("/orders/status") and text in body

    return matches


async def _start(
    kube: FakeKube, fleet: Fleet, moto: MotoServer, sqs: Any, queue: str
) -> tuple[str, Any]:
    url = (await sqs.create_queue(QueueName=queue))["QueueUrl"]
    leader = await fleet.wait_for_leader()
    await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", _spec(moto, queue)))
    await eventually(lambda: "nextScheduleTime" in _schedule(kube), 30, "the baseline write")
    return url, leader


async def test_a_leader_killed_as_it_claims_leaves_the_tick_to_the_next(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    env, tick = shifted_clock()
    async with operators(kube, 2, env=env) as fleet:
        url, leader = await _start(kube, fleet, moto, sqs, queue_name)
        assert _schedule(kube)["nextScheduleTime"] == _rfc(tick)
        claims = kill_on(kube, leader, _writes_schedules('"lastScheduleTime"'))
        await eventually(lambda: claims, TICK_AFTER + 30, "the leader's claim of the tick")
        await eventually(lambda: not leader.alive, 10, "the leader gone")
        successor = await fleet.wait_for_leader(other_than=leader)
        await eventually(
            lambda: (_schedule(kube).get("lastResult") or {}).get("outcome") == "Sent",
            30,
            lambda: f"the successor sends the missed tick\n{successor.tail()}",
        )
        assert ticks(await drain(sqs, url)) == [("every-minute", _rfc(tick))]
        assert _schedule(kube)["lastScheduleTime"] == _rfc(tick)


async def test_a_leader_killed_after_sending_is_never_repeated(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    env, tick = shifted_clock()
    async with operators(kube, 2, env=env) as fleet:
        url, leader = await _start(kube, fleet, moto, sqs, queue_name)
        # Killed as it writes the result: claimed and sent, the result never stored.
        reports = kill_on(kube, leader, _writes_schedules('"lastResult"'))
        await eventually(lambda: reports, TICK_AFTER + 30, "the leader's report of its send")
        successor = await fleet.wait_for_leader(other_than=leader)
        await successor.wait_for_log("scheduler: took over the schedules", timeout=30)
        assert ticks(await drain(sqs, url)) == [("every-minute", _rfc(tick))]
        status = _schedule(kube)
        assert status["lastScheduleTime"] == _rfc(tick)
        assert "lastResult" not in status  # the claim without a result: docs/operator.md


# --- a real sidecar with the env the injector renders ----------------------------------------
async def test_a_sidecar_routes_each_task_to_its_path(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str, webhook: WebhookRecorder
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    spec = {
        "queue": {"name": queue_name, "region": "us-east-1", "endpoint": moto.endpoint},
        "webhook": {"port": webhook.port, "path": "/events"},
        "schedules": [
            {"name": "nightly", "schedule": "0 3 * * *", "path": "/tasks/nightly"},
            {
                "name": "hourly",
                "schedule": "@hourly",
                "path": "/tasks/hourly",
                "body": "tick",
                "contentType": "text/plain",
            },
        ],
    }
    await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
    clock = Clock("2026-12-02T02:30:00Z")
    api = await KubeAPI.from_environment()
    reader = QueueReader(timeout=5)
    try:
        scheduler = Scheduler(
            api=api,
            bindings=LiveIndex(kube),
            reader=reader,
            events=EventPoster(api, SoleReplica(), "test"),
            clock=clock,
        )
        await scheduler.round()
        clock.at("2026-12-02T03:00:00Z")
        await scheduler.round()
    finally:
        await reader.close()
        await api.close()
    # Anyone who can send may name a task; an unlisted one reaches no path.
    await sqs.send_message(
        QueueUrl=url,
        MessageBody="x",
        MessageAttributes={"Carrier.TaskName": {"DataType": "String", "StringValue": "admin"}},
    )
    env = {**FAST, **render_env(spec)}
    assert env["CARRIER_WEBHOOK_TASKS"] == "nightly=/tasks/nightly,hourly=/tasks/hourly"
    command = [shutil.which("carrier-sidecar", path=str(Path(sys.executable).parent)) or "?"]
    async with sidecar_process(command, env) as sidecar:
        await eventually(lambda: len(webhook.received) >= 2, 30, "both ticks delivered")
        await eventually(lambda: sidecar.logged("admin"), 30, "the unlisted task logged")
    by_path = {r.path_qs: r for r in webhook.received}
    assert set(by_path) == {"/tasks/nightly", "/tasks/hourly"}
    nightly, hourly = by_path["/tasks/nightly"], by_path["/tasks/hourly"]
    assert nightly.headers["X-Carrier-Task-Name"] == "nightly"
    assert nightly.headers["X-Carrier-Scheduled-Time"] == "2026-12-02T03:00:00Z"
    assert nightly.headers["Content-Type"] == "application/json"
    assert nightly.body == b"{}"
    assert hourly.headers["X-Carrier-Task-Name"] == "hourly"
    assert hourly.headers["Content-Type"] == "text/plain"
    assert hourly.body == b"tick"
