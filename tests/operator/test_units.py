"""Pure parts in-process (status rendering, rollout choice, binding rules), and the queue probe's
error mapping against real HTTP servers (moto, and an aiohttp server answering like SQS does)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from carrier_operator.binding import (
    BindingError,
    passthrough_env,
    settings_hash,
    sidecar_hash,
    validate_spec,
)
from carrier_operator.queue_place import region_for
from carrier_operator.queues import QueueProbe, QueueReader
from carrier_operator.rollout import SIDECAR_HASH, is_current, restart_patch, uses_binding
from carrier_operator.status import Observed, render
from carrier_sidecar.settings import Settings
from tests.support.kube import workload_object
from tests.support.servers import MotoServer, Received, WebhookRecorder

SPEC: dict[str, Any] = {"queue": {"name": "orders"}, "webhook": {"port": 8080}}
OK = QueueProbe(True, "QueueFound", "fine", url="u", visible=3, in_flight=1, delayed=0)
GONE = QueueProbe(False, "QueueNotFound", "queue orders does not exist")


# --- status ----------------------------------------------------------------------------------
def test_transition_time_moves_only_when_a_condition_changes_status() -> None:
    obs = Observed(generation=1, probe=OK, pods=("b", "a"), settings_hash="s", env_count=3)
    first = render(obs, "T1")
    assert first["queueDepth"] == {"visible": 3, "inFlight": 1, "delayed": 0}
    assert first["boundPodNames"] == ["a", "b"]
    again = render(obs, "T2")
    assert [c["lastTransitionTime"] for c in again["conditions"]] == ["T1", "T1", "T1"]
    obs.probe = GONE
    failed = render(obs, "T3")
    assert [c["status"] for c in failed["conditions"]] == ["False", "False", "True"]
    assert [c["lastTransitionTime"] for c in failed["conditions"]] == ["T3", "T3", "T1"]
    assert failed["queueDepth"] is None, "merge-patch null: the stale depth is removed"


def test_unknown_values_are_left_out_not_erased() -> None:
    status = render(Observed(), "T")
    assert set(status) == {"conditions"}
    assert [c["status"] for c in status["conditions"]] == ["Unknown", "Unknown", "Unknown"]


def test_invalid_spec_wins_over_a_reachable_queue() -> None:
    status = render(Observed(spec_error="spec.x: bad", probe=OK), "T")
    ready, reachable, valid = status["conditions"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "InvalidSpec",
        "spec.x: bad",
    )
    assert reachable["status"] == "Unknown"
    assert (valid["type"], valid["status"], valid["reason"]) == ("Valid", "False", "InvalidSpec")


def test_conditions_survive_a_restart_until_the_queue_is_read_again() -> None:
    before = render(Observed(generation=1, probe=OK, settings_hash="s", env_count=3), "T1")
    restarted = Observed()
    restarted.seed(before)
    restarted.env_count, restarted.generation = 3, 1  # the spec is checked again first
    assert render(restarted, "T2")["conditions"] == before["conditions"]


def test_a_failed_queue_read_never_touches_valid() -> None:
    """The admission gate depends on the spec only: no AWS answer can turn it False."""
    obs = Observed(generation=1, settings_hash="s", env_count=3, probe=OK)
    valid_before = render(obs, "T1")["conditions"][2]
    for reason in ("AccessDenied", "NoCredentials", "EndpointUnreachable", "QueueError"):
        obs.probe = QueueProbe(False, reason, "no")
        ready, reachable, valid = render(obs, "T2")["conditions"]
        assert (ready["status"], reachable["status"], reachable["reason"]) == (
            "False",
            "False",
            reason,
        )
        assert "pods are still admitted" in ready["message"]
        assert valid == valid_before


def test_queue_check_off_is_ready_with_reachable_unknown() -> None:
    obs = Observed(
        generation=1, settings_hash="s", env_count=3, check_off="spec.queueCheck is false"
    )
    ready, reachable, valid = render(obs, "T")["conditions"]
    assert (ready["status"], ready["reason"]) == ("True", "Ready")
    assert (reachable["status"], reachable["reason"]) == ("Unknown", "CheckDisabled")
    assert "spec.queueCheck is false" in reachable["message"]
    assert valid["status"] == "True"


# --- rollout choice --------------------------------------------------------------------------
def test_rollout_matches_by_template_label_and_skips_current_workloads() -> None:
    mine = workload_object("ns", "w", "orders")
    assert uses_binding(mine, "orders")
    assert not uses_binding(workload_object("ns", "w", "payments"), "orders")
    assert not uses_binding(workload_object("ns", "w", None), "orders")
    assert not is_current(mine, "h1")
    mine["spec"]["template"]["metadata"].update(
        restart_patch("h1", "T")["spec"]["template"]["metadata"]
    )
    assert is_current(mine, "h1")
    assert mine["spec"]["template"]["metadata"]["annotations"][SIDECAR_HASH] == "h1"
    assert not is_current(mine, "h2")


# --- binding rules beyond the schema ---------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"sidecar": {"env": [{"name": "CARRIER_LOG_LEVEL", "value": "debug"}]}},
            "set spec.sidecar.logLevel",
        ),
        (
            {"sidecar": {"env": [{"name": "CARRIER_NOPE", "value": "1"}]}},
            "CARRIER_NOPE is not a Carrier setting",
        ),
        (
            {"sidecar": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "A is set twice",
        ),
        ({"webhook": {"port": 1, "url": "http://x:1/"}}, "spec.webhook: set webhook.port"),
        ({"webhook": {"path": "/x"}}, "webhook.path needs webhook.port"),
        ({"healthCheck": {"port": 9}}, "healthCheck.port needs healthCheck.path"),
        ({"healthCheck": {"path": "/h", "url": "http://x/h"}}, "spec.healthCheck: set"),
    ],
)
def test_validate_spec_refuses(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(BindingError, match=message.replace("[", r"\[")):
        validate_spec({**SPEC, **extra})


def test_other_env_passes_through_and_counts_in_the_sidecar_hash() -> None:
    env = [
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    spec = {**SPEC, "sidecar": {"env": env}}
    validate_spec(spec)
    assert passthrough_env(spec) == env
    base = sidecar_hash(SPEC)
    assert sidecar_hash(spec) != base
    assert sidecar_hash({**SPEC, "sidecar": {"image": "x:2"}}) != base
    assert sidecar_hash({**SPEC, "delivery": {"batchSize": 2}}) != base
    assert sidecar_hash(dict(SPEC)) == base
    assert settings_hash({"CARRIER_A": "1"}) == settings_hash({"CARRIER_A": "1"})


def test_region_comes_from_the_spec_else_the_queue_url() -> None:
    url = "https://sqs.eu-west-3.amazonaws.com/1/q"
    assert region_for(Settings.from_fields({"sqs_queue_url": url})) == "eu-west-3"
    assert (
        region_for(Settings.from_fields({"sqs_queue_url": url, "sqs_region": "us-east-2"}))
        == "us-east-2"
    )
    assert region_for(Settings.from_fields({"sqs_queue_name": "q"})) is None


# --- the queue probe over HTTP ---------------------------------------------------------------
async def test_probe_reads_depth_from_moto(moto: MotoServer, sqs: Any, queue_name: str) -> None:
    url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
    await sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=60)
    reader = QueueReader(timeout=5)
    try:
        by_name = await reader.probe(
            Settings.from_fields(
                {
                    "sqs_queue_name": queue_name,
                    "sqs_region": "us-east-1",
                    "sqs_endpoint": moto.endpoint,
                }
            )
        )
        by_url = await reader.probe(
            Settings.from_fields({"sqs_queue_url": url, "sqs_endpoint": moto.endpoint})
        )
    finally:
        await reader.close()
    assert (by_name.url, by_name.visible) == (by_url.url, by_url.visible)
    assert (by_name.reachable, by_name.visible, by_name.in_flight, by_name.delayed) == (
        True,
        0,
        0,
        1,
    )


@pytest.mark.parametrize(
    ("error_type", "reason"),
    [
        ("com.amazonaws.sqs#AccessDenied", "AccessDenied"),
        ("com.amazonaws.sqs#QueueDoesNotExist", "QueueNotFound"),
        ("com.amazonaws.sqs#InvalidAddress", "QueueError"),
    ],
)
async def test_probe_names_sqs_errors(
    webhook: WebhookRecorder, error_type: str, reason: str
) -> None:
    async def answer(_request: web.Request, _received: Received) -> web.StreamResponse:
        body = {"__type": error_type, "message": "told you so"}
        return web.json_response(body, status=400, content_type="application/x-amz-json-1.0")

    webhook.responder = answer
    reader = QueueReader(timeout=5)
    try:
        probe = await reader.probe(
            Settings.from_fields(
                {"sqs_queue_name": "q", "sqs_region": "us-east-1", "sqs_endpoint": webhook.url}
            )
        )
    finally:
        await reader.close()
    assert (probe.reachable, probe.reason) == (False, reason)
    assert "q" in probe.message
    assert webhook.url in probe.message


async def test_access_denied_names_the_action_and_the_pods_identity(
    webhook: WebhookRecorder,
) -> None:
    async def answer(request: web.Request, _received: Received) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        if target.endswith("GetQueueUrl"):
            return web.json_response(
                {"QueueUrl": f"{webhook.url}/123456789012/q"},
                content_type="application/x-amz-json-1.0",
            )
        body = {"__type": "com.amazonaws.sqs#AccessDenied", "message": "not authorized"}
        return web.json_response(body, status=400, content_type="application/x-amz-json-1.0")

    webhook.responder = answer
    reader = QueueReader(timeout=5)
    try:
        probe = await reader.probe(
            Settings.from_fields(
                {"sqs_queue_name": "q", "sqs_region": "us-east-1", "sqs_endpoint": webhook.url}
            )
        )
    finally:
        await reader.close()
    assert probe.reason == "AccessDenied"
    assert "may not call sqs:GetQueueAttributes on q" in probe.message
    assert "the pod's own identity, not the operator's" in probe.message
