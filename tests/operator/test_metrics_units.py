"""Pure parts of the operator's metrics and dead-letter awareness, in-process."""

from __future__ import annotations

import json

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from carrier_operator.dead_letters import (
    NO_POLICY,
    DeadLetter,
    RiseWatch,
    parse_policy,
)
from carrier_operator.metrics import OperatorMetrics
from carrier_operator.queues import QueueProbe
from carrier_operator.status import Observed, render
from carrier_sidecar.aws import parse_queue_arn, queue_url_from_arn

ARN = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"


def _samples(metrics: OperatorMetrics) -> list[tuple[str, dict[str, str], float]]:
    text = generate_latest(metrics.registry).decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("carrier_operator_")
    ]


def _per_binding(metrics: OperatorMetrics) -> set[tuple[str, str]]:
    return {
        (labels["namespace"], labels["binding"])
        for _name, labels, _value in _samples(metrics)
        if "binding" in labels
    }


def test_queue_url_from_arn_keeps_the_source_endpoint() -> None:
    aws = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
    assert (
        queue_url_from_arn(ARN, aws)
        == "https://sqs.eu-west-1.amazonaws.com/123456789012/orders-dlq"
    )
    local = "http://127.0.0.1:5000/123456789012/orders"
    assert queue_url_from_arn(ARN, local) == "http://127.0.0.1:5000/123456789012/orders-dlq"
    assert queue_url_from_arn("arn:aws:sns:eu-west-1:123456789012:topic", aws) is None
    assert parse_queue_arn(ARN) == ("eu-west-1", "123456789012", "orders-dlq")
    assert parse_queue_arn("orders-dlq") is None


def test_parse_policy_reads_both_count_spellings() -> None:
    assert parse_policy(json.dumps({"deadLetterTargetArn": ARN, "maxReceiveCount": "5"})) == (
        ARN,
        5,
    )
    assert parse_policy(json.dumps({"deadLetterTargetArn": ARN, "maxReceiveCount": 7})) == (ARN, 7)
    assert parse_policy(json.dumps({"deadLetterTargetArn": ARN})) == (ARN, None)
    assert parse_policy(None) is None
    assert parse_policy("not json") is None
    assert parse_policy(json.dumps({"redrivePermission": "allowAll"})) is None


def test_rise_watch_tells_a_rise_once_per_window_and_starts_from_status() -> None:
    now = [0.0]
    watch = RiseWatch(window=600, clock=lambda: now[0])
    key = ("ns", "b")
    assert watch.rose(key, 4, {"deadLetter": {"messages": 4}}) is None  # known before a restart
    assert watch.rose(key, 6) == 4
    now[0] = 10.0
    assert watch.rose(key, 9) is None  # within the window: not told, remembered from 6
    now[0] = 700.0
    assert watch.rose(key, 9) == 6  # the window is over: told from the depth last told
    assert watch.rose(key, 2) is None  # redriven
    now[0] = 1400.0
    assert watch.rose(key, 3) == 2
    watch.forget(key)
    assert watch.rose(key, 3) == 0  # forgotten, no status: any depth is news


def _observed(depth: int, dead: DeadLetter | None) -> Observed:
    obs = Observed(settings_hash="h", env_count=3, checked_at="2026-12-02T01:00:00Z")
    obs.probe = QueueProbe(True, "QueueFound", "ok", "u", depth, 1, 0, dead)
    render(obs, "2026-12-02T01:00:00Z")  # fills obs.conditions, as a publish does
    return obs


def test_per_binding_series_follow_the_notes_and_leadership() -> None:
    metrics = OperatorMetrics()
    notes = {
        ("ns", "a"): _observed(5, DeadLetter("DeadLetterQueueRead", "m", ARN, 3, 2)),
        ("ns", "b"): _observed(0, DeadLetter(NO_POLICY, "none")),
    }
    leader = [True]
    metrics.watch(lambda: list(notes.items()), lambda: leader[0])
    metrics.schedule_sent("ns", "a", "nightly", "sent")
    metrics.schedule_sent("ns", "a", "nightly", "sent")
    found = {(n, tuple(sorted(labels.items()))): v for n, labels, v in _samples(metrics)}
    a = (("binding", "a"), ("namespace", "ns"))
    assert found[("carrier_operator_queue_messages", (*a, ("state", "visible")))] == 5
    assert found[("carrier_operator_dead_letter_messages", a)] == 2
    assert found[("carrier_operator_queue_last_check_timestamp_seconds", a)] == 1796173200.0
    assert (
        found[("carrier_operator_binding_condition", (*a[:1], ("condition", "Ready"), a[1]))] == 1
    )
    sends = (("binding", "a"), ("namespace", "ns"), ("outcome", "sent"), ("schedule", "nightly"))
    assert found[("carrier_operator_schedule_sends_total", sends)] == 2
    assert (
        "carrier_operator_dead_letter_messages",
        (("binding", "b"), ("namespace", "ns")),
    ) not in found
    assert _per_binding(metrics) == {("ns", "a"), ("ns", "b")}

    del notes[("ns", "b")]
    assert _per_binding(metrics) == {("ns", "a")}
    metrics.forget(("ns", "a"))
    del notes[("ns", "a")]
    assert _per_binding(metrics) == set()

    notes[("ns", "c")] = _observed(1, None)
    leader[0] = False
    assert _per_binding(metrics) == set()
    assert ("carrier_operator_leader", {}, 0.0) in _samples(metrics)


def test_admission_labels_are_bounded() -> None:
    metrics = OperatorMetrics()
    metrics.admission_reviewed("mutate-pods", "allowed", 0.002)
    metrics.admission_reviewed("../../etc/passwd", "denied", 0.001)
    metrics.admission_reviewed("mutate-pods", "surprise", 0.001)
    found = {
        (labels["webhook"], labels["result"]): v
        for n, labels, v in _samples(metrics)
        if n == "carrier_operator_admission_requests_total"
    }
    assert found[("mutate-pods", "allowed")] == 1
    assert found[("unknown", "denied")] == 1
    assert found[("mutate-pods", "error")] == 1
    assert {w for w, _ in found} == {"mutate-pods", "validate-carrierbindings", "unknown"}
