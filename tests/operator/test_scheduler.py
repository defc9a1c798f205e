"""The leader's scheduler (``scheduler.py``) in-process, against moto_server over HTTP and the
strict fake Kubernetes API (the chart's RBAC, resourceVersion + 409), driven by an injected
clock: no test waits for a wall-clock minute. The index it reads is a live view of the fake
API's objects, shaped as kopf's index entries are (``bindings_cache.index_entry``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import kmock
import pytest
from aiohttp import web

from carrier_operator.bindings_cache import index_entry
from carrier_operator.events import SCHEDULE_SEND_FAILED, EventPoster
from carrier_operator.kubeapi import KubeAPI
from carrier_operator.leader import LeaderElector, Leadership, NotLeader, SoleReplica
from carrier_operator.queues import QueueReader
from carrier_operator.scheduler import Scheduler
from carrier_operator.status_writer import StatusWriter
from tests.support.kube import BINDINGS, LEASES, FakeKube, binding_object
from tests.support.operators import LEASE_NAME, RELEASE_NAMESPACE, fleet_cluster
from tests.support.servers import MotoServer
from tests.support.sqs_proxy import SqsProxy

NAMESPACE = "team-a"
Key = tuple[str, str]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Clock:
    """The scheduler's wall clock, moved by the test."""

    def __init__(self, start: str) -> None:
        self.now = utc(start)

    def __call__(self) -> datetime:
        return self.now

    def at(self, text: str) -> None:
        self.now = utc(text)


class LiveIndex(Mapping[Any, Any]):
    """kopf's binding index as the scheduler sees it, read from the fake API's store."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    def _keys(self) -> list[Key]:
        return [
            (obj["metadata"]["namespace"], obj["metadata"]["name"])
            for obj in self.kube.list(BINDINGS)
        ]

    def __getitem__(self, key: Any) -> list[dict[str, Any]]:
        obj = self.kube.get(BINDINGS, key[0], key[1])
        if obj is None:
            raise KeyError(key)
        return [index_entry(key[0], key[1], obj)[key]]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fleet_cluster(NAMESPACE) as api:
        yield api


@pytest.fixture
async def api(kube: FakeKube) -> AsyncIterator[KubeAPI]:
    client = await KubeAPI.from_environment()  # the kubeconfig fake_kube wrote: the operator's SA
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def new_reader() -> AsyncIterator[QueueReader]:
    """The operator's SQS plumbing, as a process makes it (its own clients)."""
    made = QueueReader(timeout=5)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def reader() -> AsyncIterator[QueueReader]:
    async with new_reader() as made:
        yield made


class Sends:
    """What ``on_send`` was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str]] = []

    def __call__(self, namespace: str, binding: str, schedule: str, outcome: str) -> None:
        self.calls.append((namespace, binding, schedule, outcome))


def scheduler(
    kube: FakeKube,
    api: KubeAPI,
    reader: QueueReader,
    clock: Clock,
    leadership: Leadership | None = None,
    on_send: Sends | None = None,
) -> Scheduler:
    lead = leadership or SoleReplica()
    return Scheduler(
        api=api,
        bindings=LiveIndex(kube),
        reader=reader,
        events=EventPoster(api, lead, "test-replica"),
        leadership=lead,
        clock=clock,
        on_send=on_send or Sends(),
    )


def spec(endpoint: str, queue: str, *schedules: dict[str, Any]) -> dict[str, Any]:
    return {
        "queue": {"name": queue, "region": "us-east-1", "endpoint": endpoint},
        "webhook": {"port": 8080},
        "schedules": list(schedules),
    }


def entries(kube: FakeKube, name: str = "orders") -> dict[str, dict[str, Any]]:
    items = kube.status(BINDINGS, NAMESPACE, name).get("schedules") or []
    return {item["name"]: item for item in items}


async def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message now in the queue (received and deleted), with all attributes."""
    found: list[dict[str, Any]] = []
    for _ in range(50):  # bounded: at most 500 messages in any test
        answer = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        batch = answer.get("Messages") or []
        if not batch:
            return found
        found += batch
        for message in batch:
            await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def ticks(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted(
        (
            m["MessageAttributes"]["Carrier.TaskName"]["StringValue"],
            m["MessageAttributes"]["Carrier.ScheduledTime"]["StringValue"],
        )
        for m in messages
    )


HOURLY = {"name": "hourly", "schedule": "0 * * * *", "path": "/tasks/hourly"}


async def test_one_message_per_tick_and_status_says_when(
    kube: FakeKube, api: KubeAPI, reader: QueueReader, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    clock = Clock("2026-12-02T10:20:00Z")
    sends = Sends()
    first = scheduler(kube, api, reader, clock, on_send=sends)
    await kube.create(
        BINDINGS, binding_object(NAMESPACE, "orders", spec(moto.endpoint, queue_name, HOURLY))
    )

    await first.round()  # first sight: the baseline, nothing sent for ticks before it
    assert entries(kube) == {
        "hourly": {"name": "hourly", "nextScheduleTime": "2026-12-02T11:00:00Z"}
    }
    for now in ("2026-12-02T10:40:00Z", "2026-12-02T10:59:59Z"):
        clock.at(now)
        await first.round()
    assert await drain(sqs, url) == []

    clock.at("2026-12-02T11:00:00Z")
    await first.round()
    for now in ("2026-12-02T11:00:01Z", "2026-12-02T11:30:00Z", "2026-12-02T11:59:59Z"):
        clock.at(now)
        await first.round()
    (message,) = await drain(sqs, url)
    assert message["Body"] == "{}"
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "Carrier.TaskName": "hourly",
        "Carrier.ScheduledTime": "2026-12-02T11:00:00Z",
        "Body.ContentType": "application/json",
    }
    status = entries(kube)["hourly"]
    assert status["lastScheduleTime"] == "2026-12-02T11:00:00Z"
    assert status["nextScheduleTime"] == "2026-12-02T12:00:00Z"
    assert status["lastResult"]["outcome"] == "Sent"
    assert status["lastResult"]["tick"] == "2026-12-02T11:00:00Z"
    assert message["MessageId"] in status["lastResult"]["message"]

    clock.at("2026-12-02T12:00:02Z")
    await first.round()
    await first.round()
    assert ticks(await drain(sqs, url)) == [("hourly", "2026-12-02T12:00:00Z")]
    assert sends.calls == [(NAMESPACE, "orders", "hourly", "sent")] * 2


async def test_a_restart_mid_period_neither_repeats_nor_misses(
    kube: FakeKube, api: KubeAPI, reader: QueueReader, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    clock = Clock("2026-12-02T10:50:00Z")
    entry = {**HOURLY, "startingDeadlineSeconds": 600}
    await kube.create(
        BINDINGS, binding_object(NAMESPACE, "orders", spec(moto.endpoint, queue_name, entry))
    )
    before = scheduler(kube, api, reader, clock)
    await before.round()
    clock.at("2026-12-02T11:00:00Z")
    await before.round()
    assert ticks(await drain(sqs, url)) == [("hourly", "2026-12-02T11:00:00Z")]

    # A new operator (new process: nothing in memory) mid-period: the status is all it knows.
    clock.at("2026-12-02T11:30:00Z")
    async with new_reader() as fresh_reader:
        after = scheduler(kube, api, fresh_reader, clock)
        await after.round()
        assert await drain(sqs, url) == []
        # Down over the 12:00 tick, back at 12:05: within the deadline, 12:00 is sent once.
        clock.at("2026-12-02T12:05:00Z")
        await after.round()
        await after.round()
        assert ticks(await drain(sqs, url)) == [("hourly", "2026-12-02T12:00:00Z")]
        # Down from 12:30 to 15:20: 13:00, 14:00 are never sent; 15:00 is past the deadline.
        clock.at("2026-12-02T15:20:00Z")
        await after.round()
        assert await drain(sqs, url) == []
        status = entries(kube)["hourly"]
        assert status["lastScheduleTime"] == "2026-12-02T12:00:00Z"
        assert status["lastResult"]["outcome"] == "Missed"
        assert status["lastResult"]["tick"] == "2026-12-02T15:00:00Z"
        assert "startingDeadlineSeconds 600" in status["lastResult"]["message"]
        assert status["nextScheduleTime"] == "2026-12-02T16:00:00Z"
        clock.at("2026-12-02T16:00:00Z")
        await after.round()
        assert ticks(await drain(sqs, url)) == [("hourly", "2026-12-02T16:00:00Z")]


async def test_replicas_racing_for_one_tick_send_it_once(
    kube: FakeKube, api: KubeAPI, reader: QueueReader, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    """The window a failover leaves: a deposed leader that still believes it leads, and the new
    one, both find the same tick due. The resourceVersion-checked claim lets one of them send."""
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    clock = Clock("2026-12-02T10:50:00Z")
    await kube.create(
        BINDINGS, binding_object(NAMESPACE, "orders", spec(moto.endpoint, queue_name, HOURLY))
    )
    async with new_reader() as other_reader:
        old = scheduler(kube, api, reader, clock)
        other_api = await KubeAPI.from_environment()
        try:
            new = scheduler(kube, other_api, other_reader, clock)
            await old.round()
            hours = [f"2026-12-02T{hour}:00:00Z" for hour in range(11, 17)]
            for tick in hours:
                clock.at(tick)
                await asyncio.gather(old.round(), new.round())
            assert ticks(await drain(sqs, url)) == [("hourly", tick) for tick in hours]
            conflicts = [
                s
                for s in kube.served("PATCH", f"/{NAMESPACE}/carrierbindings/orders/status")
                if s.status == 409
            ]
            assert conflicts, "the race was real: some claims met a 409 and were dropped"
        finally:
            await other_api.close()


def _elector(api: KubeAPI, identity: str, now: list[float]) -> LeaderElector:
    return LeaderElector(
        api,
        namespace=RELEASE_NAMESPACE,
        name=LEASE_NAME,
        identity=identity,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
        clock=lambda: now[0],
    )


async def test_failover_through_the_lease_carries_on_without_a_repeat(
    kube: FakeKube, api: KubeAPI, reader: QueueReader, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    clock = Clock("2026-12-02T10:50:00Z")
    monotonic = [1000.0]
    await kube.create(
        BINDINGS, binding_object(NAMESPACE, "orders", spec(moto.endpoint, queue_name, HOURLY))
    )
    other_api = await KubeAPI.from_environment()
    try:
        a, b = _elector(api, "replica-a", monotonic), _elector(other_api, "replica-b", monotonic)
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        on_a, on_b = (
            scheduler(kube, api, reader, clock, a),
            scheduler(kube, other_api, reader, clock, b),
        )
        await on_a.round()
        clock.at("2026-12-02T11:00:00Z")
        await on_a.round()
        assert ticks(await drain(sqs, url)) == [("hourly", "2026-12-02T11:00:00Z")]

        # A stops renewing (its node is gone); past the lease duration B takes over.
        monotonic[0] += 16
        assert not a.is_leader()
        assert await b.try_acquire_or_renew()
        holder = (kube.get(LEASES, RELEASE_NAMESPACE, LEASE_NAME) or {})["spec"]["holderIdentity"]
        assert holder == "replica-b"
        clock.at("2026-12-02T11:00:20Z")
        await on_b.round()
        assert await drain(sqs, url) == []  # 11:00 was claimed by A: B does not repeat it
        clock.at("2026-12-02T12:00:00Z")
        with pytest.raises(NotLeader):  # the deposed leader finds 12:00 due; its fence holds
            await on_a.round()
        await on_b.round()
        assert ticks(await drain(sqs, url)) == [("hourly", "2026-12-02T12:00:00Z")]
    finally:
        await other_api.close()


async def test_a_suspended_schedule_sends_nothing_until_resumed(
    kube: FakeKube, api: KubeAPI, reader: QueueReader, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    clock = Clock("2026-12-02T10:50:00Z")
    paused = {**HOURLY, "suspend": True}
    running = {"name": "other", "schedule": "30 * * * *", "path": "/tasks/other"}
    await kube.create(
        BINDINGS,
        binding_object(NAMESPACE, "orders", spec(moto.endpoint, queue_name, paused, running)),
    )
    sched = scheduler(kube, api, reader, clock)
    for now in (
        "2026-12-02T10:50:00Z",
        "2026-12-02T11:00:00Z",
        "2026-12-02T11:30:00Z",
        "2026-12-02T12:00:00Z",
    ):
        clock.at(now)
        await sched.round()
    assert ticks(await drain(sqs, url)) == [("other", "2026-12-02T11:30:00Z")]
    assert entries(kube)["hourly"] == {"name": "hourly"}  # no next tick while suspended
    # Resumed at 12:10: suspended since it was created, it has no tick of its own to catch up
    # on, so its first is the next one.
    await kube.patch(
        BINDINGS, NAMESPACE, "orders", {"spec": spec(moto.endpoint, queue_name, HOURLY, running)}
    )
    clock.at("2026-12-02T12:10:00Z")
    await sched.round()
    assert entries(kube)["hourly"]["nextScheduleTime"] == "2026-12-02T13:00:00Z"
    for now in ("2026-12-02T12:30:00Z", "2026-12-02T13:00:00Z"):
        clock.at(now)
        await sched.round()
    assert ticks(await drain(sqs, url)) == [
        ("hourly", "2026-12-02T13:00:00Z"),
        ("other", "2026-12-02T12:30:00Z"),
    ]
    # Suspended over 14:00 and resumed at 14:10: as a CronJob without startingDeadlineSeconds,
    # the latest tick missed while suspended is sent on resume, once.
    await kube.patch(
        BINDINGS, NAMESPACE, "orders", {"spec": spec(moto.endpoint, queue_name, paused)}
    )
    clock.at("2026-12-02T14:00:00Z")
    await sched.round()
    assert await drain(sqs, url) == []
    await kube.patch(
        BINDINGS, NAMESPACE, "orders", {"spec": spec(moto.endpoint, queue_name, HOURLY)}
    )
    clock.at("2026-12-02T14:10:00Z")
    await sched.round()
    await sched.round()
    assert ticks(await drain(sqs, url)) == [("hourly", "2026-12-02T14:00:00Z")]
    assert list(entries(kube)) == ["hourly"]  # "other" left the spec, and the status


async def _walk(sched: Scheduler, clock: Clock, start: str, end: str, step: timedelta) -> None:
    clock.at(start)
    while clock.now <= utc(end):
        await sched.round()
        clock.now += step


@pytest.mark.parametrize(
    ("schedule", "start", "end", "expected"),
    [
        # Fall back (2026-11-01, 02:00 EDT → 01:00 EST): 01:30 happens twice; sent once.
        ("30 1 * * *", "2026-10-31T12:00:00Z", "2026-11-01T12:00:00Z", ["2026-11-01T05:30:00Z"]),
        # Spring forward (2026-03-08, 02:00 EST → 03:00 EDT): 02:30 does not exist; sent at 03:00.
        ("30 2 * * *", "2026-03-07T12:00:00Z", "2026-03-08T12:00:00Z", ["2026-03-08T07:00:00Z"]),
    ],
)
async def test_a_time_zone_with_a_dst_change(
    kube: FakeKube,
    api: KubeAPI,
    reader: QueueReader,
    moto: MotoServer,
    sqs: Any,
    queue_name: str,
    schedule: str,
    start: str,
    end: str,
    expected: list[str],
) -> None:
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    clock = Clock(start)
    entry = {"name": "nightly", "schedule": schedule, "timeZone": "America/New_York", "path": "/n"}
    await kube.create(
        BINDINGS, binding_object(NAMESPACE, "orders", spec(moto.endpoint, queue_name, entry))
    )
    await _walk(scheduler(kube, api, reader, clock), clock, start, end, timedelta(minutes=10))
    assert ticks(await drain(sqs, url)) == [("nightly", tick) for tick in expected]


async def test_fifo_queue_group_per_schedule_and_dedup_per_tick(
    kube: FakeKube, api: KubeAPI, reader: QueueReader, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    name = f"{queue_name}.fifo"
    url = (await sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"}))["QueueUrl"]
    clock = Clock("2026-12-02T10:50:00Z")
    daily = {"name": "daily", "schedule": "0 11 * * *", "path": "/tasks/daily", "body": "go"}
    proxy = await SqsProxy(upstream=moto.endpoint).start()  # counts the SendMessage calls
    try:
        await _fifo_case(kube, api, reader, sqs, clock, proxy, name, url, daily)
    finally:
        await proxy.stop()


async def _fifo_case(
    kube: FakeKube,
    api: KubeAPI,
    reader: QueueReader,
    sqs: Any,
    clock: Clock,
    proxy: SqsProxy,
    name: str,
    url: str,
    daily: dict[str, Any],
) -> None:
    await kube.create(
        BINDINGS, binding_object(NAMESPACE, "orders", spec(proxy.endpoint, name, HOURLY, daily))
    )
    sched = scheduler(kube, api, reader, clock)
    await sched.round()
    clock.at("2026-12-02T11:00:00Z")
    await sched.round()
    # The lost-claim case: the status forgets the claim (as if the leader died after sending,
    # before its claim was seen), so the tick is sent again; the queue drops the copy.
    await kube.patch(
        BINDINGS,
        NAMESPACE,
        "orders",
        {
            "status": {
                "schedules": [
                    {"name": "hourly", "nextScheduleTime": "2026-12-02T11:00:00Z"},
                    {"name": "daily", "nextScheduleTime": "2026-12-02T11:00:00Z"},
                ]
            }
        },
    )
    clock.at("2026-12-02T11:00:30Z")
    await sched.round()
    assert entries(kube)["hourly"]["lastResult"]["outcome"] == "Sent"
    assert proxy.ledger.calls.get("SendMessage") == 4  # each tick really was sent twice
    messages = await drain(sqs, url)
    found = {
        m["MessageAttributes"]["Carrier.TaskName"]["StringValue"]: m["Attributes"] for m in messages
    }
    assert set(found) == {"hourly", "daily"}
    assert found["hourly"]["MessageGroupId"] == "hourly"
    assert found["hourly"]["MessageDeduplicationId"] == "hourly@2026-12-02T11:00:00Z"
    assert found["daily"]["MessageGroupId"] == "daily"
    assert found["daily"]["MessageDeduplicationId"] == "daily@2026-12-02T11:00:00Z"


async def test_access_denied_on_send_shows_in_status_and_as_one_warning(
    kube: FakeKube, api: KubeAPI, reader: QueueReader, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    """The operator may read the queue but not send to it (an IAM policy without
    sqs:SendMessage): a proxy in front of moto answers SendMessage as SQS does then."""
    await sqs.create_queue(QueueName=queue_name)

    async def deny_send(
        _request: web.Request, action: str, _proxy: SqsProxy
    ) -> web.Response | None:
        if action != "SendMessage":
            return None
        body = {
            "__type": "com.amazonaws.sqs#AccessDenied",
            "message": "User: arn:aws:iam::1:role/op is not authorized to perform: sqs:sendmessage",
        }
        return web.json_response(body, status=400, content_type="application/x-amz-json-1.0")

    proxy = await SqsProxy(upstream=moto.endpoint, mischief=deny_send).start()
    try:
        clock = Clock("2026-12-02T10:50:00Z")
        sends = Sends()
        sched = scheduler(kube, api, reader, clock, on_send=sends)
        minutely = {"name": "hourly", "schedule": "* * * * *", "path": "/tasks/hourly"}
        await kube.create(
            BINDINGS,
            binding_object(NAMESPACE, "orders", spec(proxy.endpoint, queue_name, minutely)),
        )
        await sched.round()
        for tick in ("11:00", "11:01", "11:02", "11:09", "11:10", "11:11"):
            clock.at(f"2026-12-02T{tick}:00Z")
            await sched.round()
        status = entries(kube)["hourly"]
        result = status["lastResult"]
        assert (result["outcome"], result["reason"]) == ("Failed", "AccessDenied")
        assert result["tick"] == status["lastScheduleTime"] == "2026-12-02T11:11:00Z"
        assert "may not call sqs:SendMessage" in result["message"]
        warnings = [
            e for e in kube.events(NAMESPACE, "orders") if e["reason"] == SCHEDULE_SEND_FAILED
        ]
        # Rate-limited: one Event per schedule and reason every 10 minutes, not one per tick.
        assert sorted(w["message"].split(" not sent")[0] for w in warnings) == [
            "schedule hourly: tick 2026-12-02T11:00:00Z",
            "schedule hourly: tick 2026-12-02T11:10:00Z",
        ]
        assert {w["type"] for w in warnings} == {"Warning"}
        assert sends.calls == [(NAMESPACE, "orders", "hourly", "failed")] * 6
    finally:
        await proxy.stop()


async def test_the_checkers_status_writes_and_the_schedulers_keep_each_others_keys(
    kube: FakeKube, api: KubeAPI, reader: QueueReader, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    """The checker merge-patches its keys of status (no ``schedules``), the scheduler writes
    only ``schedules`` under the resourceVersion: a checker write between the scheduler's read
    and its claim is a 409 for the claim, which re-reads and keeps the conditions."""
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    clock = Clock("2026-12-02T10:50:00Z")
    await kube.create(
        BINDINGS, binding_object(NAMESPACE, "orders", spec(moto.endpoint, queue_name, HOURLY))
    )
    statuses = StatusWriter(api)
    obs = statuses.observed((NAMESPACE, "orders"))
    obs.settings_hash, obs.env_count = "abc", 3
    await statuses.publish((NAMESPACE, "orders"))
    sched = scheduler(kube, api, reader, clock)
    await sched.round()
    clock.at("2026-12-02T11:00:00Z")
    version = kube.get(BINDINGS, NAMESPACE, "orders")["metadata"]["resourceVersion"]  # type: ignore[index]

    def checker_writes_first(request: kmock.Request) -> None:
        """Just before the claim is applied, the checker's write lands (a new lastChecked and
        so a new resourceVersion), as it may between the scheduler's GET and its PATCH."""
        if "/status" in request.url.path and "resourceVersion" in str(request.data):
            kube.mock.write_hooks.remove(checker_writes_first)
            stored = kube.get(BINDINGS, NAMESPACE, "orders") or {}
            stored["status"]["lastChecked"] = "2026-12-02T11:00:00Z"
            stored["metadata"]["resourceVersion"] = str(int(version) + 1000)

    kube.mock.write_hooks.append(checker_writes_first)
    await sched.round()
    assert ticks(await drain(sqs, url)) == [("hourly", "2026-12-02T11:00:00Z")]
    conflicts = [s for s in kube.served("PATCH", "/orders/status") if s.status == 409]
    assert len(conflicts) == 1
    obs.checked_at = "2026-12-02T11:00:05Z"
    await statuses.publish((NAMESPACE, "orders"))
    status = kube.status(BINDINGS, NAMESPACE, "orders")
    assert status["settingsHash"] == "abc"
    assert status["lastChecked"] == "2026-12-02T11:00:05Z"
    assert {c["type"] for c in status["conditions"]} == {"Ready", "QueueReachable", "Valid"}
    assert status["schedules"][0]["lastScheduleTime"] == "2026-12-02T11:00:00Z"
    assert status["schedules"][0]["lastResult"]["outcome"] == "Sent"
