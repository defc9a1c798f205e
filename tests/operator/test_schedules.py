"""``spec.schedules`` as pure logic: parsing with one-line field errors, ticks in a time zone
(both DST changes), the CronJob rule for which tick is due, the rendered task routes, and the
CRD schema refusing what it can express."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import jsonschema
import pytest

from carrier_operator.binding import render_env, sidecar_hash
from carrier_operator.scheduler import dedup_id, plan, send_request
from carrier_operator.schedules import (
    Schedule,
    due,
    latest_tick,
    next_tick,
    parse_schedules,
)
from carrier_operator.validation import binding_problems
from tests.operator.test_crd import _for_jsonschema, root_schema

BASE: dict[str, Any] = {"queue": {"name": "q"}, "webhook": {"port": 8080}}


def one(**fields: Any) -> Schedule:
    entry = {"name": "job", "schedule": "0 * * * *", "path": "/tasks/job", **fields}
    return parse_schedules([entry])[0]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- parsing: each bad entry is one line naming its index and field ---------------------------
GOOD = {"name": "ok", "schedule": "@daily", "path": "/ok"}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"schedule": "61 * * * *"}, "spec.schedules[1].schedule: '61 * * * *' is not a cron"),
        ({"schedule": "* * * *"}, "spec.schedules[1].schedule: '* * * *' needs 5 fields"),
        ({"schedule": "* * * * * *"}, "spec.schedules[1].schedule: '* * * * * *' needs 5 fields"),
        ({"schedule": "@reboot"}, "spec.schedules[1].schedule: '@reboot' is not a macro"),
        ({"timeZone": "Mars/Olympus"}, "spec.schedules[1].timeZone: 'Mars/Olympus' is not an"),
        ({"timeZone": "../../etc/passwd"}, "spec.schedules[1].timeZone: '../../etc/passwd' is"),
        ({"path": "tasks/x"}, "spec.schedules[1].path: 'tasks/x' is not absolute"),
        ({"path": "//evil.example/x"}, "spec.schedules[1].path: '//evil.example/x' names a host"),
        ({"path": "http://evil/x"}, "spec.schedules[1].path: 'http://evil/x' names a host"),
        ({"path": "/a/../admin"}, "spec.schedules[1].path: '/a/../admin' has a '.' or '..'"),
        ({"path": "/a/%2e%2e/admin"}, "spec.schedules[1].path: '/a/%2e%2e/admin' escapes"),
        ({"path": "/x?debug=1"}, "spec.schedules[1].path: '/x?debug=1' has a query"),
        ({"name": "ok"}, "spec.schedules[1].name: 'ok' is already the name of spec.schedules[0]"),
        ({"name": "-x"}, "spec.schedules[1].name: '-x' is not 1-63 letters"),
        ({"startingDeadlineSeconds": 0}, "spec.schedules[1].startingDeadlineSeconds: must be"),
        ({"suspend": "yes"}, "spec.schedules[1].suspend: must be true or false"),
        ({"contentType": "json\r\nX: y"}, "spec.schedules[1].contentType: "),
        ({"body": ""}, "spec.schedules[1].body: must be a non-empty string"),
        ({"cron": "* * * * *"}, "spec.schedules[1].cron: not a schedule field"),
    ],
)
def test_a_bad_entry_is_one_line_naming_its_field(bad: dict[str, Any], expected: str) -> None:
    entry = {"name": "second", "schedule": "*/5 * * * *", "path": "/tasks/second", **bad}
    problems = binding_problems(
        {**BASE, "schedules": [GOOD, entry]}, "team-a", allow_remote_webhooks=False
    )
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]
    assert "\n" not in problems[0]


def test_entries_render_the_sidecars_task_routes() -> None:
    spec = {
        **BASE,
        "schedules": [
            {"name": "nightly", "schedule": "0 3 * * *", "path": "/tasks/nightly"},
            {"name": "hourly", "schedule": "@hourly", "path": "/tasks/hourly", "suspend": True},
        ],
    }
    env = render_env(spec)
    assert env["CARRIER_WEBHOOK_TASKS"] == "nightly=/tasks/nightly,hourly=/tasks/hourly"
    assert "CARRIER_WEBHOOK_TASKS" not in render_env(BASE)


def test_macros_and_whitespace() -> None:
    assert one(schedule="@hourly").expression == "@hourly"
    assert one(schedule="  0   3 * * 1-5 ").expression == "0 3 * * 1-5"


# --- ticks -----------------------------------------------------------------------------------
def test_ticks_in_a_time_zone_are_reported_in_utc() -> None:
    entry = one(schedule="0 9 * * *", timeZone="Asia/Tokyo")
    assert next_tick(entry, utc("2026-12-01T23:00:00Z")) == utc("2026-12-02T00:00:00Z")
    assert latest_tick(entry, utc("2026-12-02T00:00:00Z")) == utc("2026-12-02T00:00:00Z")
    assert latest_tick(entry, utc("2026-12-01T23:59:59Z")) == utc("2026-12-01T00:00:00Z")


def _ticks(entry: Schedule, start: str, count: int) -> list[str]:
    found, at = [], utc(start)
    for _ in range(count):
        at = next_tick(entry, at)
        found.append(at.strftime("%Y-%m-%dT%H:%MZ"))
    return found


def test_spring_forward_runs_a_skipped_wall_time_once_after_the_gap() -> None:
    # New York, 2026-03-08: 02:00 EST becomes 03:00 EDT; 02:30 does not exist that day.
    entry = one(schedule="30 2 * * *", timeZone="America/New_York")
    assert _ticks(entry, "2026-03-07T00:00:00Z", 3) == [
        "2026-03-07T07:30Z",  # 02:30 EST
        "2026-03-08T07:00Z",  # 03:00 EDT, the first minute after the gap
        "2026-03-09T06:30Z",  # 02:30 EDT
    ]


def test_fall_back_runs_a_fixed_hour_once_and_an_interval_in_elapsed_time() -> None:
    # New York, 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:00-02:00 happens twice.
    daily = one(schedule="30 1 * * *", timeZone="America/New_York")
    assert _ticks(daily, "2026-10-31T12:00:00Z", 2) == [
        "2026-11-01T05:30Z",  # 01:30 EDT; 01:30 EST is skipped
        "2026-11-02T06:30Z",
    ]
    assert latest_tick(daily, utc("2026-11-01T06:45:00Z")) == utc("2026-11-01T05:30:00Z")
    every_30 = one(schedule="*/30 * * * *", timeZone="America/New_York")
    assert _ticks(every_30, "2026-11-01T04:50:00Z", 5) == [
        "2026-11-01T05:00Z",
        "2026-11-01T05:30Z",
        "2026-11-01T06:00Z",  # 01:00 EST, the repeated hour
        "2026-11-01T06:30Z",
        "2026-11-01T07:00Z",
    ]


# --- which tick is due -----------------------------------------------------------------------
def test_only_the_latest_missed_tick_is_due_and_only_within_the_deadline() -> None:
    entry = one(schedule="0 * * * *", startingDeadlineSeconds=600)
    last = utc("2026-12-01T05:00:00Z")
    # Down from 05:30 to 09:05: 06:00, 07:00, 08:00 and 09:00 missed; 09:00 alone is due.
    found = due(entry, utc("2026-12-01T09:05:00Z"), last=last, first=None)
    assert found is not None
    assert (found.tick, found.missed) == (utc("2026-12-01T09:00:00Z"), False)
    late = due(entry, utc("2026-12-01T09:10:01Z"), last=last, first=None)
    assert late is not None
    assert late.missed
    assert (
        due(entry, utc("2026-12-01T09:30:00Z"), last=utc("2026-12-01T09:00:00Z"), first=None)
        is None
    )
    no_deadline = one(schedule="0 * * * *")
    found = due(no_deadline, utc("2026-12-03T00:30:00Z"), last=last, first=None)
    assert found is not None
    assert not found.missed
    assert found.tick == utc("2026-12-03T00:00:00Z")


def test_a_new_entry_never_fires_for_ticks_before_it_was_first_seen() -> None:
    entry = one(schedule="0 0 * * *")
    first = utc("2026-12-02T00:00:00Z")
    assert due(entry, utc("2026-12-01T12:00:00Z"), last=None, first=first) is None
    found = due(entry, utc("2026-12-02T00:00:30Z"), last=None, first=first)
    assert found is not None
    assert found.tick == first
    assert due(entry, utc("2026-12-02T00:00:30Z"), last=None, first=None) is None


def test_suspended_is_never_due_and_has_no_next_tick() -> None:
    entry = one(suspend=True)
    assert (
        due(entry, utc("2026-12-02T05:00:00Z"), last=utc("2026-12-01T00:00:00Z"), first=None)
        is None
    )
    made = plan(
        [entry],
        {"schedules": [{"name": "job", "lastScheduleTime": "2026-12-01T00:00:00Z"}]},
        utc("2026-12-02T05:00:00Z"),
    )
    assert made.items == [{"name": "job", "lastScheduleTime": "2026-12-01T00:00:00Z"}]
    assert made.claims == []


def test_a_missed_tick_is_reported_once() -> None:
    entry = one(startingDeadlineSeconds=60)
    now = utc("2026-12-02T05:30:00Z")
    first = plan(
        [entry], {"schedules": [{"name": "job", "lastScheduleTime": "2026-12-02T03:00:00Z"}]}, now
    )
    assert [tick for _, tick in first.missed] == [utc("2026-12-02T05:00:00Z")]
    assert first.items[0]["lastResult"]["outcome"] == "Missed"
    again = plan([entry], {"schedules": first.items}, now + timedelta(seconds=5))
    assert again.missed == []
    assert again.items == first.items


# --- what is sent ----------------------------------------------------------------------------
def test_fifo_sends_carry_a_group_per_schedule_and_a_dedup_id_per_tick() -> None:
    entry = one(body='{"x": 1}', contentType="application/json")
    tick = utc("2026-12-02T05:00:00Z")
    request = send_request(entry, tick, fifo=True)
    assert request["MessageGroupId"] == "job"
    assert request["MessageDeduplicationId"] == "job@2026-12-02T05:00:00Z" == dedup_id("job", tick)
    assert (
        request["MessageAttributes"]["Carrier.ScheduledTime"]["StringValue"]
        == "2026-12-02T05:00:00Z"
    )
    assert request["MessageAttributes"]["Body.ContentType"]["StringValue"] == "application/json"
    standard = send_request(one(body="plain"), tick, fifo=False)
    assert "MessageGroupId" not in standard
    assert "MessageDeduplicationId" not in standard
    assert "Body.ContentType" not in standard["MessageAttributes"]  # the sidecar's default type


# --- the CRD schema refuses what a schema can say ---------------------------------------------
def _schema_errors(entry: dict[str, Any]) -> list[str]:
    schema = _for_jsonschema(copy.deepcopy(root_schema()))
    obj = {"spec": {**BASE, "schedules": [entry]}}
    validator = jsonschema.Draft202012Validator(schema)
    return ["/".join(str(p) for p in e.absolute_path) for e in validator.iter_errors(obj)]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"schedule": "* * *"}, "schedule"),
        ({"schedule": "@reboot"}, "schedule"),
        ({"path": "tasks"}, "path"),
        ({"path": "//host/x"}, "path"),
        ({"path": "/a/../b"}, "path"),
        ({"path": "/a?b"}, "path"),
        ({"name": "bad name"}, "name"),
        ({"timeZone": "Europe/Paris;rm"}, "timeZone"),
        ({"startingDeadlineSeconds": 0}, "startingDeadlineSeconds"),
    ],
)
def test_the_crd_schema_refuses(bad: dict[str, Any], field: str) -> None:
    entry = {"name": "job", "schedule": "0 * * * *", "path": "/tasks/job", **bad}
    assert _schema_errors(entry) == [f"spec/schedules/0/{field}"]


def test_the_crd_schema_admits_a_full_entry() -> None:
    entry = {
        "name": "nightly.backup_1",
        "schedule": "@daily",
        "timeZone": "America/Argentina/Buenos_Aires",
        "path": "/tasks/nightly/",
        "body": "{}",
        "contentType": "application/json; charset=utf-8",
        "startingDeadlineSeconds": 300,
        "suspend": False,
    }
    assert _schema_errors(entry) == []
    assert (
        binding_problems({**BASE, "schedules": [entry]}, "team-a", allow_remote_webhooks=False)
        == []
    )


def test_only_task_routes_reach_the_sidecar_and_its_rollout_hash() -> None:
    """A new time or time zone changes nothing in the pods (the operator sends the ticks); a new
    task name or path is a new CARRIER_WEBHOOK_TASKS, so rolloutOnChange restarts them."""
    entry = {"name": "nightly", "schedule": "0 3 * * *", "path": "/tasks/nightly"}
    base = sidecar_hash({**BASE, "schedules": [entry]})
    retimed = {**entry, "schedule": "15 4 * * *", "timeZone": "Asia/Tokyo", "suspend": True}
    assert sidecar_hash({**BASE, "schedules": [retimed]}) == base
    assert sidecar_hash({**BASE, "schedules": [{**entry, "path": "/tasks/n2"}]}) != base
    assert sidecar_hash(BASE) != base
