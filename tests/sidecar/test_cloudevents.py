"""CloudEvents binary mode, pure: the ce-* headers of a message, read back by the SDK."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from carrier_sidecar.aws import partition_of, queue_arn
from carrier_sidecar.cloudevents import (
    DEFAULT_TYPE,
    binary_headers,
    encode,
    event_source,
    is_structured,
)
from carrier_sidecar.envelope import Envelope
from carrier_sidecar.settings import Settings
from tests.support.cloudevents_reader import attributes, read_event

ARN = "arn:aws:sqs:eu-west-1:123456789012:orders"
SENT_MS = "1795833201999"  # 2026-11-28T02:33:21.999Z


def string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def message(**attrs: Any) -> dict[str, Any]:
    return {
        "MessageId": "0d5b1a4e-5c6e-4c64-9a1e-6c1fb3c8a001",
        "Body": '{"order": 7}',
        "Attributes": {"SentTimestamp": SENT_MS, "ApproximateReceiveCount": "1"},
        "MessageAttributes": attrs,
    }


def envelope(**env: str) -> Envelope:
    settings = Settings.load(
        {"CARRIER_SQS_QUEUE_NAME": "orders", "CARRIER_WEBHOOK_FORMAT": "cloudevents", **env}
    )
    return Envelope(settings, ARN)


def test_the_context_attributes() -> None:
    headers = binary_headers(message(), ARN)
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": "0d5b1a4e-5c6e-4c64-9a1e-6c1fb3c8a001",
        "ce-source": ARN,
        "ce-type": DEFAULT_TYPE,
        "ce-time": "2026-11-28T02:33:21.999Z",
    }


def test_the_sdk_reads_every_field() -> None:
    msg = message(
        **{
            "ce-type": string("com.example.order.created"),
            "ce-subject": string("orders/7"),
            "ce-dataschema": string("https://example.com/order.json"),
            "Body.ContentType": string("application/json; charset=utf-8"),
            "tenant": string('Zürich "HQ" 100%'),
            "priority": {"DataType": "Number", "StringValue": "5"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
            "ce-region": string("eu"),
            "region": string("ignored: ce-region wins"),
        }
    )
    request = envelope().build(msg)
    assert request is not None
    event = read_event(request.headers, request.body)
    assert attributes(event) == {
        "specversion": "1.0",
        "id": "0d5b1a4e-5c6e-4c64-9a1e-6c1fb3c8a001",
        "source": ARN,
        "type": "com.example.order.created",
        "subject": "orders/7",
        "dataschema": "https://example.com/order.json",
        "time": datetime(2026, 11, 28, 2, 33, 21, 999000, tzinfo=UTC),
        "datacontenttype": "application/json; charset=utf-8",
        "tenant": 'Zürich "HQ" 100%',
        "priority": "5",
        "blob": base64.b64encode(b"\x00\xff").decode(),
        "region": "eu",
    }
    assert event.get_data() == {"order": 7}
    # the raw headers, not only what the SDK makes of them (it would invent a missing id/time)
    assert request.headers["ce-tenant"] == "Z%C3%BCrich%20%22HQ%22%20100%25"
    assert request.headers["ce-id"] == msg["MessageId"]
    assert request.headers["ce-time"] == "2026-11-28T02:33:21.999Z"
    # raw mode's headers stay: switching modes loses nothing
    assert request.headers["X-Carrier-Message-Id"] == msg["MessageId"]
    assert request.headers["X-Carrier-Attr-tenant"] == "UTF-8''Z%C3%BCrich%20%22HQ%22%20100%25"
    assert request.headers["X-Carrier-Attr-ce-type"] == "com.example.order.created"


@pytest.mark.parametrize(
    "name",
    [
        "Tenant",  # upper case
        "order.id",
        "order-id",
        "order_id",
        "a" * 21,  # longer than the spec's 20
        "id",  # context attributes cannot be overridden...
        "source",
        "time",
        "specversion",
        "datacontenttype",
        "data",  # ...and `data` is reserved
        "ce-id",
        "ce-source",
        "ce-time",
        "ce-specversion",
        "ce-datacontenttype",
        "ce-Bad",
        "Carrier.ScheduledTime",
    ],
)
def test_names_that_are_no_extension_only_keep_their_carrier_header(name: str) -> None:
    msg = message(**{name: string("v")})
    request = envelope().build(msg)
    assert request is not None
    event = read_event(request.headers, request.body)  # the SDK accepts every header we send
    got = attributes(event)
    assert got["id"] == msg["MessageId"]
    assert got["source"] == ARN
    assert "v" not in got.values()
    assert request.headers[f"X-Carrier-Attr-{name}"] == "v"


@pytest.mark.parametrize(
    "value", ["a\r\nce-id: forged", "日本語", " edge ", "%41", "tab\t", '"quoted"']
)
def test_header_values_are_http_text_and_round_trip(value: str) -> None:
    request = envelope().build(message(subject=string(value), **{"ce-subject": string(value)}))
    assert request is not None
    for header in request.headers.values():
        assert header.isascii()
        assert all(0x20 <= ord(c) < 0x7F for c in header), header
    assert read_event(request.headers, request.body).get_subject() == value
    assert request.headers["ce-subject"] == encode(value)


def test_a_structured_event_passes_through_unchanged() -> None:
    body = (
        '{"specversion": "1.0", "id": "evt-1", "source": "/producer", "type": "t",'
        ' "time": "2026-12-01T00:00:00Z", "data": {"k": 1}}'
    )
    msg = message(**{"Body.ContentType": string("application/cloudevents+json; charset=UTF-8")})
    msg["Body"] = body
    request = envelope().build(msg)
    assert request is not None
    assert request.body == body.encode()
    assert request.headers["Content-Type"] == "application/cloudevents+json; charset=UTF-8"
    assert not [h for h in request.headers if h.lower().startswith("ce-")]
    assert request.headers["X-Carrier-Message-Id"] == msg["MessageId"]
    event = read_event(request.headers, request.body)
    assert event.get_id() == "evt-1"
    assert event.get_source() == "/producer"
    assert event.get_data() == {"k": 1}
    assert is_structured("Application/CloudEvents+JSON")
    assert not is_structured("application/cloudevents-batch+json")


def test_raw_mode_has_no_ce_headers() -> None:
    settings = Settings.load({"CARRIER_SQS_QUEUE_NAME": "orders"})
    request = Envelope(settings, ARN).build(message(**{"ce-type": string("x")}))
    assert request is not None
    assert not [h for h in request.headers if h.lower().startswith("ce-")]


def test_a_task_message_in_cloudevents_mode_keeps_its_task_headers() -> None:
    msg = message(**{"Carrier.TaskName": string("nightly")})
    request = envelope(CARRIER_WEBHOOK_TASKS="nightly=/tasks/nightly").build(msg)
    assert request is not None
    assert request.url.path == "/tasks/nightly"
    assert request.headers["X-Carrier-Task-Name"] == "nightly"
    assert request.headers["ce-specversion"] == "1.0"


@pytest.mark.parametrize(
    ("url", "region", "arn"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/orders", None, ARN),
        (
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q.fifo",
            None,
            "arn:aws-cn:sqs:cn-north-1:123456789012:q.fifo",
        ),
        (
            "https://sqs.us-gov-west-1.amazonaws.com/123456789012/q",
            None,
            "arn:aws-us-gov:sqs:us-gov-west-1:123456789012:q",
        ),
        (
            "https://sqs.us-isob-east-1.sc2s.sgov.gov/123456789012/q",
            None,
            "arn:aws-iso-b:sqs:us-isob-east-1:123456789012:q",
        ),
        (
            "https://queue.amazonaws.com/123456789012/q",
            None,
            "arn:aws:sqs:us-east-1:123456789012:q",
        ),
        (
            "https://vpce-1.sqs.us-east-1.vpce.amazonaws.com/123456789012/q",
            "eu-west-1",  # the URL's own region wins
            "arn:aws:sqs:us-east-1:123456789012:q",
        ),
        ("http://127.0.0.1:5000/123456789012/q", "us-east-1", None),  # moto: no real ARN
        ("https://sqs.eu-west-1.amazonaws.com/q", None, None),  # no account
        ("https://sqs.eu-west-1.amazonaws.com/123/q", None, None),
        (None, "us-east-1", None),
    ],
)
def test_queue_arn(url: str | None, region: str | None, arn: str | None) -> None:
    assert queue_arn(url, region) == arn


def test_the_source_falls_back_to_the_url() -> None:
    assert event_source("http://127.0.0.1:5000/123456789012/q", "us-east-1", "q") == (
        "http://127.0.0.1:5000/123456789012/q"
    )
    assert event_source(None, None, "q") == "q"


def test_partitions_come_from_botocore() -> None:
    assert partition_of("eu-central-1") == "aws"
    assert partition_of("cn-northwest-1") == "aws-cn"
    assert partition_of("us-iso-east-1") == "aws-iso"
    assert partition_of("eu-isoe-west-1") == "aws-iso-e"
