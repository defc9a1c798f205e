"""The headers a worker sees, built from a message as ReceiveMessage returns it (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

import pytest

from carrier_sidecar.headers import build_headers, encode_value


def message(**attrs: Mapping[str, str | bytes]) -> dict[str, object]:
    return {
        "MessageId": "id-1",
        "Body": "{}",
        "Attributes": {
            "ApproximateReceiveCount": "3",
            "ApproximateFirstReceiveTimestamp": "1795833201999",
        },
        "MessageAttributes": attrs,
    }


def decode(value: str) -> str:
    return unquote(value[7:]) if value.startswith("UTF-8''") else value


def test_carrier_headers_in_seconds() -> None:
    headers = build_headers(message(), "application/json")
    assert headers["X-Carrier-Receive-Count"] == "3"
    assert headers["X-Carrier-First-Receive-Time"] == "1795833201"  # seconds, not SQS's ms
    assert headers["X-Carrier-Message-Id"] == "id-1"
    assert headers["Content-Type"] == "application/json"


def test_content_type_from_the_attribute() -> None:
    attrs = {"Body.ContentType": {"DataType": "String", "StringValue": "text/plain; charset=utf-8"}}
    assert build_headers(message(**attrs), "application/json")["Content-Type"] == (
        "text/plain; charset=utf-8"
    )


def test_unsafe_content_type_falls_back_to_the_default() -> None:
    attrs = {"Body.ContentType": {"DataType": "String", "StringValue": "text/plain\r\nX-Evil: 1"}}
    assert build_headers(message(**attrs), "application/json")["Content-Type"] == "application/json"


def test_string_and_number_attributes_pass_binary_is_skipped() -> None:
    attrs: dict[str, dict[str, str | bytes]] = {
        "tenant": {"DataType": "String", "StringValue": "acme"},
        "priority": {"DataType": "Number", "StringValue": "7"},
        "kind": {"DataType": "String.custom", "StringValue": "x"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00"},
    }
    headers = build_headers(message(**attrs), "application/json")
    assert headers["X-Carrier-Attr-tenant"] == "acme"
    assert headers["X-Carrier-Attr-priority"] == "7"
    assert headers["X-Carrier-Attr-kind"] == "x"
    assert not any("blob" in name for name in headers)


@pytest.mark.parametrize(
    "value",
    [
        "Zürich",
        "日本語",
        "a\r\nX-Injected: 1",
        " padded ",
        "tab\there",
        "UTF-8''looks-encoded",
        "%41",
    ],
)
def test_values_that_are_not_header_text_round_trip(value: str) -> None:
    encoded = encode_value(value)
    assert encoded.isascii()
    assert "\r" not in encoded
    assert "\n" not in encoded
    assert decode(encoded) == value


@pytest.mark.parametrize("value", ["plain", "a b c", "x=1;y=2", "", "%41"])
def test_plain_values_stay_as_they_are(value: str) -> None:
    assert encode_value(value) == value
