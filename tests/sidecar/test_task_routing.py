"""Task routing on the real ``carrier-sidecar`` process against moto and real webhooks."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.queues import depth, drained, make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually, free_port
from tests.support.sidecars import env_for, in_process, sidecar_process

TASKS = "nightly=/tasks/nightly,hourly=/tasks/hourly"


def task(name: str, when: str | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"Carrier.TaskName": {"DataType": "String", "StringValue": name}}
    if when is not None:
        attrs["Carrier.ScheduledTime"] = {"DataType": "String", "StringValue": when}
    return attrs


async def metric(port: int, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not exposed")


def error_lines(lines: list[str]) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return [r for r in records if r.get("level") == "error"]


async def test_each_task_goes_to_its_path_with_its_headers(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    url = await make_queue(sqs, queue_name)
    nightly = await sqs.send_message(
        QueueUrl=url,
        MessageBody="n",
        MessageAttributes=task("nightly", "2026-12-01T03:00:00+01:00"),
    )
    await sqs.send_message(QueueUrl=url, MessageBody="h", MessageAttributes=task("hourly"))
    await sqs.send_message(QueueUrl=url, MessageBody="plain")
    env = env_for(moto, queue_name, webhook.url + "/jobs?src=sqs", CARRIER_WEBHOOK_TASKS=TASKS)
    async with sidecar_process(sidecar_command, env):
        await eventually(lambda: len(webhook.received) >= 3, 20, "three POSTs")
        await eventually(lambda: drained(sqs, url), 10, "the queue to drain")
    by_body = {r.body: r for r in webhook.received}
    assert len(webhook.received) == 3
    assert by_body[b"n"].path_qs == "/tasks/nightly"
    assert by_body[b"n"].headers["X-Carrier-Task-Name"] == "nightly"
    assert by_body[b"n"].headers["X-Carrier-Scheduled-Time"] == "2026-12-01T02:00:00Z"
    assert by_body[b"n"].headers["X-Carrier-Message-Id"] == nightly["MessageId"]
    assert by_body[b"n"].headers["X-Carrier-Attr-Carrier.ScheduledTime"] == (
        "2026-12-01T03:00:00+01:00"
    )
    assert by_body[b"h"].path_qs == "/tasks/hourly"
    assert by_body[b"h"].headers["X-Carrier-Task-Name"] == "hourly"
    assert "X-Carrier-Scheduled-Time" not in by_body[b"h"].headers
    assert by_body[b"plain"].path_qs == "/jobs?src=sqs"
    assert "X-Carrier-Task-Name" not in by_body[b"plain"].headers


async def test_an_unlisted_task_is_never_posted_and_reaches_the_dead_letter_queue(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    dlq_url = await make_queue(sqs, queue_name + "-dlq")
    dlq_arn = (await sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    url = await make_queue(sqs, queue_name, VisibilityTimeout="60", RedrivePolicy=redrive)
    await sqs.send_message(QueueUrl=url, MessageBody="w", MessageAttributes=task("weekly"))
    port = free_port()
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_WEBHOOK_TASKS=TASKS,
        CARRIER_HTTP_ADDR=f"127.0.0.1:{port}",
        CARRIER_RETRY_BACKOFF_BASE="1s",
        CARRIER_RETRY_BACKOFF_MAX="2s",
    )
    async with sidecar_process(sidecar_command, env) as sidecar:

        async def in_dlq() -> bool:
            return (await depth(sqs, dlq_url))[0] == 1

        await eventually(in_dlq, 30, "the unlisted task in the dead-letter queue")
        assert await metric(port, "carrier_unrouted_tasks_total") == 3
        assert await metric(port, "carrier_deliveries_total") == 0, "no POST was made"
        # a listed task still flows after it
        await sqs.send_message(QueueUrl=url, MessageBody="n", MessageAttributes=task("nightly"))
        await eventually(lambda: webhook.received, 15, "the listed task's POST")
        errors = error_lines(sidecar.lines)
    assert [r.path_qs for r in webhook.received] == ["/tasks/nightly"]
    assert len(errors) == 1, "one line per task name per minute, not one per receive"
    assert errors[0]["task"] == "weekly"
    assert errors[0]["receive_count"] == 1
    (dead,) = (
        await sqs.receive_message(
            QueueUrl=dlq_url, MessageSystemAttributeNames=["ApproximateReceiveCount"]
        )
    )["Messages"]
    assert dead["Body"] == "w"
    assert int(dead["Attributes"]["ApproximateReceiveCount"]) >= 3, "its receive count rose"


HOSTILE = [
    "../admin",
    "/admin",
    "nightly/../../admin",
    "%2e%2e/admin",
    "nightly\r\nX-Evil: 1",
    "nightly ",
    "NIGHTLY",
    "x" * 300,
]


async def test_hostile_task_names_never_reach_another_path_or_host(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    elsewhere = await WebhookRecorder().start()
    try:
        hostile = [*HOSTILE, f"{elsewhere.url}/steal", f"//127.0.0.1:{elsewhere.port}/steal"]
        url = await make_queue(sqs, queue_name, VisibilityTimeout="60")
        for index, name in enumerate(hostile):
            await sqs.send_message(
                QueueUrl=url, MessageBody=f"hostile-{index}", MessageAttributes=task(name)
            )
        await sqs.send_message(QueueUrl=url, MessageBody="ok", MessageAttributes=task("nightly"))
        port = free_port()
        env = env_for(
            moto,
            queue_name,
            webhook.url + "/jobs",
            CARRIER_WEBHOOK_TASKS=TASKS,
            CARRIER_HTTP_ADDR=f"127.0.0.1:{port}",
            CARRIER_SQS_BATCH_SIZE="10",
            CARRIER_RETRY_BACKOFF_BASE="30s",  # each hostile message is refused once here
        )
        async with sidecar_process(sidecar_command, env) as sidecar:
            await eventually(lambda: sidecar.logged('"msg": "receiving"'), 20, "receiving")

            async def all_refused() -> bool:
                return await metric(port, "carrier_unrouted_tasks_total") >= len(hostile)

            await eventually(all_refused, 20, "every hostile message refused")
            await eventually(lambda: webhook.received, 15, "the listed task's POST")

            async def only_listed_deleted() -> bool:
                # The POST is recorded before its 2xx reaches the sidecar; wait for the delete
                # before the process is killed, or the kill races it.
                return await depth(sqs, url) == (0, len(hostile))

            await eventually(only_listed_deleted, 15, "all kept, only the listed one deleted")
            lines = list(sidecar.lines)
        assert [(r.path_qs, r.body) for r in webhook.received] == [("/tasks/nightly", b"ok")]
        assert elsewhere.received == []
        assert await depth(sqs, url) == (0, len(hostile)), "all kept, none deleted"
        assert all(json.loads(line) for line in lines), "a name cannot break a log line"
        names = [r["task"] for r in error_lines(lines)]
        assert "nightly\\r\\nX-Evil: 1" in names
        assert "x" * 80 + "…" in names
    finally:
        await elsewhere.stop()


async def test_an_unlisted_task_holds_its_fifo_group_like_a_failure(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str
) -> None:
    """The group's later message is not delivered ahead of the refused one (FIFO order)."""
    name = queue_name + ".fifo"
    url = await make_queue(sqs, name, ContentBasedDeduplication="true")
    await sqs.send_message(
        QueueUrl=url, MessageBody="w", MessageGroupId="g", MessageAttributes=task("weekly")
    )
    await sqs.send_message(QueueUrl=url, MessageBody="after", MessageGroupId="g")
    await sqs.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="h")
    env = env_for(
        moto,
        name,
        webhook.url,
        CARRIER_WEBHOOK_TASKS=TASKS,
        CARRIER_SQS_BATCH_SIZE="10",
        CARRIER_RETRY_BACKOFF_BASE="1s",
        CARRIER_RETRY_BACKOFF_MAX="1s",
    )
    async with in_process(env) as sidecar:
        await eventually(lambda: sidecar.counter("unrouted_tasks") >= 2, 20, "two refusals")
        await eventually(lambda: webhook.received, 10, "the other group's POST")
    assert [r.body for r in webhook.received] == [b"other"], "group g waits behind 'weekly'"
