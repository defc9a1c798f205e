"""Task routing, pure: the CARRIER_WEBHOOK_TASKS rules, the route decision, the log throttle."""

from __future__ import annotations

from typing import Any

import pytest

from carrier_sidecar.settings import ConfigError, Settings
from carrier_sidecar.tasks import LogThrottle, Routed, TaskRouter, parse_task_routes, printable


def load(tasks: str) -> Settings:
    return Settings.load({"CARRIER_SQS_QUEUE_NAME": "q", "CARRIER_WEBHOOK_TASKS": tasks})


def task_message(name: Any, when: str | None = None, data_type: str = "String") -> dict[str, Any]:
    attrs: dict[str, Any] = {"Carrier.TaskName": {"DataType": data_type, "StringValue": name}}
    if when is not None:
        attrs["Carrier.ScheduledTime"] = {"DataType": "String", "StringValue": when}
    return {"MessageId": "m", "Body": "{}", "MessageAttributes": attrs}


def test_routes_parse_in_order() -> None:
    settings = load(" nightly=/tasks/nightly , hourly=/tasks/hourly/,a.b_c-1=/x;v=1/@:~ ")
    assert settings.task_routes == {
        "nightly": "/tasks/nightly",
        "hourly": "/tasks/hourly/",
        "a.b_c-1": "/x;v=1/@:~",
    }
    assert Settings.load({"CARRIER_SQS_QUEUE_NAME": "q"}).task_routes == {}


@pytest.mark.parametrize(
    ("tasks", "problem"),
    [
        ("=/x", "task name '' is not"),
        ("-x=/x", "task name '-x' is not"),
        ("a b=/x", "task name 'a b' is not"),
        ("x" * 64 + "=/x", "is not 1-63"),
        ("nightly", "entry 'nightly' is not name=/path"),
        ("a=/x,,b=/y", "empty entry"),
        ("a=/x,", "empty entry"),
        ("a=/x,a=/y", "task 'a' is listed twice"),
        ("a=x", "is not absolute"),
        ("a=", "is not absolute"),
        ("a=http://evil.example/x", "names a host"),
        ("a=//evil.example/x", "names a host"),
        ("a=/x?q=1", "has a query or fragment"),
        ("a=/x#f", "has a query or fragment"),
        ("a=/x//y", "has an empty segment"),
        ("a=/x/../y", "has a '.' or '..' segment"),
        ("a=/./x", "has a '.' or '..' segment"),
        ("a=/..", "has a '.' or '..' segment"),
        ("a=/x/%2e%2E/y", "escapes"),
        ("a=/x%2Fy", "escapes"),
        ("a=/x%5cy", "escapes"),
        ("a=/x%00", "escapes"),
        ("a=/x\\y", "has characters"),
        ("a=/x y", "has characters"),
        ("a=/ü", "has characters"),
        ("a=/x%zz", "has characters"),
    ],
)
def test_bad_routes_are_one_line_naming_the_variable(tasks: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tasks)
    text = str(caught.value)
    assert text.startswith("CARRIER_WEBHOOK_TASKS: "), text
    assert problem in text, text
    assert "\n" not in text


def test_percent_escapes_other_than_separators_are_allowed() -> None:
    assert parse_task_routes("a=/x%20y/%C3%BC") == {"a": "/x%20y/%C3%BC"}


ROUTER = TaskRouter(
    "https://worker.local:8443/jobs?token=1", {"nightly": "/tasks/nightly", "root": "/"}
)


def test_a_listed_task_goes_to_its_path_on_the_webhook_origin() -> None:
    decision = ROUTER.route(task_message("nightly", "2026-12-01T03:00:00+01:00"))
    assert isinstance(decision, Routed)
    assert str(decision.url) == "https://worker.local:8443/tasks/nightly"
    assert decision.headers == {
        "X-Carrier-Task-Name": "nightly",
        "X-Carrier-Scheduled-Time": "2026-12-01T02:00:00Z",
    }
    root = ROUTER.route(task_message("root"))
    assert isinstance(root, Routed)
    assert str(root.url) == "https://worker.local:8443/"
    assert root.headers == {"X-Carrier-Task-Name": "root"}


def test_a_message_without_a_task_is_not_routed() -> None:
    assert ROUTER.route({"MessageId": "m", "Body": "{}"}) is None
    assert ROUTER.route({"MessageId": "m", "MessageAttributes": {"other": {}}}) is None


@pytest.mark.parametrize(
    "name",
    [
        "weekly",
        "Nightly",
        "nightly ",
        "../nightly",
        "/tasks/nightly",
        "http://evil.example/",
        "nightly\r\nX-Evil: 1",
        "",
    ],
)
def test_an_unlisted_or_hostile_name_is_routed_nowhere(name: str) -> None:
    assert ROUTER.route(task_message(name)) == name


def test_a_task_name_that_is_not_a_string_is_routed_nowhere() -> None:
    assert ROUTER.route(task_message("nightly", data_type="Number")) == "<Number attribute>"
    binary = {
        "MessageAttributes": {"Carrier.TaskName": {"DataType": "Binary", "BinaryValue": b"x"}}
    }
    assert ROUTER.route(binary) == "<Binary attribute>"


def test_no_routes_means_every_task_is_unrouted() -> None:
    assert TaskRouter("http://localhost:9000", {}).route(task_message("nightly")) == "nightly"


@pytest.mark.parametrize(
    ("given", "header"),
    [
        ("2026-12-01T02:00:00Z", "2026-12-01T02:00:00Z"),
        ("2026-12-01t02:00:00z", "2026-12-01T02:00:00Z"),
        ("2026-12-01T02:00:00.250Z", "2026-12-01T02:00:00.250Z"),
        ("2026-03-29T03:30:00+02:00", "2026-03-29T01:30:00Z"),
        ("2026-12-01T02:00:00", None),  # no offset: not RFC 3339
        ("2026-12-01", None),
        ("tomorrow", None),
        ("2026-13-01T02:00:00Z", None),
        ("2026-12-01T02:00:00Z\r\nX-Evil: 1", None),
    ],
)
def test_scheduled_time_is_rfc3339_utc_or_absent(given: str, header: str | None) -> None:
    decision = ROUTER.route(task_message("nightly", given))
    assert isinstance(decision, Routed)
    assert decision.headers.get("X-Carrier-Scheduled-Time") == header


def test_printable_escapes_and_cuts_hostile_names() -> None:
    assert printable("a\r\nb") == "a\\r\\nb"
    assert printable("x" * 200) == "x" * 80 + "…"
    assert printable("日本") == "\\u65e5\\u672c"


def test_log_throttle_once_a_minute_per_name_and_ten_in_all() -> None:
    throttle = LogThrottle(interval=60, per_interval=10, keys=256)
    assert throttle.admit("weekly", 0.0) == 0
    assert throttle.admit("weekly", 1.0) is None
    assert throttle.admit("weekly", 59.0) is None
    assert throttle.admit("weekly", 60.0) == 2, "two lines were held back"
    admitted = [n for n in range(100) if throttle.admit(f"n{n}", 61.0) is not None]
    assert len(admitted) == 9, "ten lines per minute in all (weekly took one)"
    assert throttle.admit("n50", 121.0) == 1


def test_log_throttle_memory_is_bounded() -> None:
    throttle = LogThrottle(interval=60, per_interval=10**9, keys=16)
    for n in range(10_000):
        throttle.admit(f"name-{n}" * 50, float(n))
    assert len(throttle._last) <= 16
    assert len(throttle._suppressed) <= 32
