"""The pure outcome rules, as a table: HTTP answer → Delivered | RetryAt | Failed."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from carrier_sidecar.outcome import Delivered, Failed, RetryAt, classify, kind

NOW = 1_800_000_000.0
IN_90S = formatdate(NOW + 90, usegmt=True)
PAST = formatdate(NOW - 3600, usegmt=True)
FAR = formatdate(NOW + 10 * 86400, usegmt=True)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, Delivered(200)),
        (201, {}, Delivered(201)),
        (202, {}, Delivered(202)),
        (204, {}, Delivered(204)),
        (299, {"Retry-After": "5"}, Delivered(299)),
        (429, {"Retry-After": "7"}, RetryAt(7, 429)),
        (503, {"Retry-After": " 7 "}, RetryAt(7, 503)),
        (429, {"Retry-After": "0"}, RetryAt(0, 429)),
        (429, {"Retry-After": "999999"}, RetryAt(43200, 429)),
        (503, {"Retry-After": IN_90S}, RetryAt(90, 503)),
        (429, {"Retry-After": PAST}, RetryAt(0, 429)),
        (429, {"Retry-After": FAR}, RetryAt(43200, 429)),
        (429, {"Retry-After": "Sun Nov  6 08:49:37 2027"}, RetryAt(43200, 429)),
        (429, {}, Failed("HTTP 429", 429)),
        (503, {}, Failed("HTTP 503", 503)),
        (500, {"Retry-After": "5"}, Failed("HTTP 500", 500)),
        (302, {}, Failed("HTTP 302", 302)),
        (301, {"Location": "https://w/hook"}, Failed("HTTP 301 redirect to 'https://w/hook'", 301)),
        (308, {"Location": "/hook/"}, Failed("HTTP 308 redirect to '/hook/'", 308)),
        (302, {"Location": "x" * 500}, Failed(f"HTTP 302 redirect to {'x' * 200!r}", 302)),
        (404, {}, Failed("HTTP 404", 404)),
        (100, {}, Failed("HTTP 100", 100)),
    ],
)
def test_answers(status: int, headers: dict[str, str], expected: object) -> None:
    assert classify(status, headers, NOW) == expected


@pytest.mark.parametrize("value", ["-5", "1.5", "soon", "", "²", "Mon, 32 Foo 2020 00:00:00 GMT"])
def test_unreadable_retry_after_is_a_failure(value: str) -> None:
    outcome = classify(429, {"Retry-After": value}, NOW)
    assert isinstance(outcome, Failed)
    assert outcome.status == 429
    assert "Retry-After" in outcome.reason


def test_metric_labels() -> None:
    assert kind(Delivered(200)) == "success"
    assert kind(RetryAt(1, 429)) == "retry_after"
    assert kind(Failed("HTTP 500", 500)) == "failure"
    assert kind(Failed("timed out", timeout=True)) == "timeout"
