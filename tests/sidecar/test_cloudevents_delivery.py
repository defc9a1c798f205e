"""CloudEvents binary mode on the real ``carrier-sidecar`` process, read back by the SDK."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tests.support.cloudevents_reader import attributes, read_event
from tests.support.queues import drained, make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually
from tests.support.sidecars import env_for, sidecar_process

RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


async def test_every_delivery_is_a_cloudevent_field_by_field(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    url = await make_queue(sqs, queue_name)
    before = datetime.now(UTC).replace(microsecond=0)
    typed = await sqs.send_message(
        QueueUrl=url,
        MessageBody='{"order": 7}',
        MessageAttributes={
            "ce-type": string("com.example.order.created"),
            "ce-subject": string("orders/7"),
            "tenant": string("Zürich"),
            "priority": {"DataType": "Number", "StringValue": "5"},
            "Order.Id": string("o-7"),
        },
    )
    plain = await sqs.send_message(
        QueueUrl=url,
        MessageBody="hello",
        MessageAttributes={"Body.ContentType": string("text/plain")},
    )
    structured_body = (
        '{"specversion": "1.0", "id": "evt-1", "source": "/producer", "type": "com.example.x",'
        ' "time": "2026-12-01T00:00:00Z", "datacontenttype": "application/json",'
        ' "data": {"k": 1}}'
    )
    structured = await sqs.send_message(
        QueueUrl=url,
        MessageBody=structured_body,
        MessageAttributes={"Body.ContentType": string("application/cloudevents+json")},
    )
    env = env_for(moto, queue_name, webhook.url, CARRIER_WEBHOOK_FORMAT="cloudevents")
    async with sidecar_process(sidecar_command, env):
        await eventually(lambda: len(webhook.received) >= 3, 20, "three POSTs")
        await eventually(lambda: drained(sqs, url), 10, "the queue to drain")
    after = datetime.now(UTC)
    by_body = {r.body: r for r in webhook.received}

    got = by_body[b'{"order": 7}']
    event = attributes(read_event(got.headers, got.body))
    sent_at = event.pop("time")
    assert before <= sent_at <= after
    assert event == {
        "specversion": "1.0",
        "id": typed["MessageId"],
        "source": url,  # moto: no real ARN, so the queue URL
        "type": "com.example.order.created",
        "subject": "orders/7",
        "datacontenttype": "application/json",
        "tenant": "Zürich",
        "priority": "5",
    }
    # the raw headers too: the SDK would invent a missing id or time
    assert got.headers["ce-specversion"] == "1.0"
    assert got.headers["ce-id"] == typed["MessageId"]
    assert RFC3339_MS.fullmatch(got.headers["ce-time"])
    assert got.headers["ce-tenant"] == "Z%C3%BCrich"
    assert got.headers["X-Carrier-Attr-Order.Id"] == "o-7", "not an extension name, still sent"
    assert got.headers["X-Carrier-Message-Id"] == typed["MessageId"]

    text = by_body[b"hello"]
    text_event = read_event(text.headers, text.body)
    assert text_event.get_id() == plain["MessageId"]
    assert text_event.get_type() == "com.amazonaws.sqs.message"
    assert text_event.get_datacontenttype() == "text/plain"
    assert text_event.get_data() == "hello"
    assert text.headers["ce-id"] == plain["MessageId"]

    passed = by_body[structured_body.encode()]
    assert not [h for h in passed.headers if h.lower().startswith("ce-")]
    assert passed.headers["Content-Type"] == "application/cloudevents+json"
    assert passed.headers["X-Carrier-Message-Id"] == structured["MessageId"]
    structured_event = read_event(passed.headers, passed.body)
    assert structured_event.get_id() == "evt-1"
    assert structured_event.get_source() == "/producer"
    assert structured_event.get_time() == datetime(2026, 12, 1, tzinfo=UTC)
    assert structured_event.get_data() == {"k": 1}


async def test_the_source_is_the_queue_arn_on_aws(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    """An AWS-shaped queue URL (served by moto through CARRIER_SQS_ENDPOINT) names a real ARN."""
    await make_queue(sqs, queue_name)
    aws_url = f"https://sqs.us-east-1.amazonaws.com/123456789012/{queue_name}"
    sent = await sqs.send_message(QueueUrl=aws_url, MessageBody="{}")
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_WEBHOOK_FORMAT="cloudevents",
        CARRIER_SQS_QUEUE_URL=aws_url,
    )
    del env["CARRIER_SQS_QUEUE_NAME"]
    async with sidecar_process(sidecar_command, env):
        await eventually(lambda: webhook.received, 20, "the POST")
    (got,) = webhook.received
    event = read_event(got.headers, got.body)
    assert event.get_source() == f"arn:aws:sqs:us-east-1:123456789012:{queue_name}"
    assert event.get_id() == sent["MessageId"]
