"""The real operator (kopf + our handlers) against kmock's API over HTTP, with moto as SQS."""

from __future__ import annotations

from typing import Any

from carrier_operator.binding import render_env, settings_hash, sidecar_hash
from carrier_operator.config import OperatorSettings
from carrier_operator.rollout import RESTARTED_AT, SIDECAR_HASH
from tests.operator.conftest import NAMESPACE
from tests.support.kube import (
    BINDINGS,
    DEPLOYMENTS,
    PODS,
    STATEFULSETS,
    FakeKube,
    OperatorHandle,
    binding_object,
    condition,
    pod_object,
    running_operator,
    workload_object,
)
from tests.support.servers import MotoServer, eventually, free_port


def _spec(queue: str, moto: MotoServer, **extra: Any) -> dict[str, Any]:
    return {
        "queue": {"name": queue, "region": "us-east-1", "endpoint": moto.endpoint},
        "webhook": {"port": 8080, "path": "/jobs"},
        **extra,
    }


async def _queue(sqs: Any, name: str, messages: int = 0) -> str:
    url = str((await sqs.create_queue(QueueName=name))["QueueUrl"])
    for i in range(messages):
        await sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    return url


def _status(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.status(BINDINGS, NAMESPACE, name)


def _cond(kube: FakeKube, name: str, kind: str) -> dict[str, Any]:
    return condition(_status(kube, name), kind)


def _template_annotations(kube: FakeKube, resource: str, name: str) -> dict[str, str]:
    obj = kube.get(resource, NAMESPACE, name) or {}
    meta = obj.get("spec", {}).get("template", {}).get("metadata", {})
    return dict(meta.get("annotations") or {})


def _event_reasons(kube: FakeKube, name: str) -> list[str]:
    return [str(e.get("reason")) for e in kube.events(NAMESPACE, name)]


async def test_binding_becomes_ready_with_queue_depth(
    kube: FakeKube, operator: OperatorHandle, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    url = await _queue(sqs, queue_name, messages=2)
    spec = _spec(queue_name, moto)
    await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))

    await eventually(
        lambda: _cond(kube, "orders", "Ready").get("status") == "True", 20, "Ready=True"
    )
    status = _status(kube, "orders")
    assert status["queueDepth"] == {"visible": 2, "inFlight": 0, "delayed": 0}
    assert status["queueUrl"] == url
    assert _cond(kube, "orders", "QueueReachable")["reason"] == "QueueFound"
    assert status["settingsHash"] == settings_hash(render_env(spec))
    assert status["sidecarHash"] == sidecar_hash(spec)
    assert status["renderedEnvCount"] == len(render_env(spec))
    assert status["observedGeneration"] == 1
    assert _cond(kube, "orders", "Ready")["observedGeneration"] == 1
    assert status["queue"] == queue_name
    assert status["webhook"] == ":8080/jobs"
    assert status["boundPods"] == 0
    assert status["lastChecked"].endswith("Z")
    await eventually(
        lambda: "SettingsRendered" in _event_reasons(kube, "orders"), 10, "SettingsRendered event"
    )
    binding = kube.get(BINDINGS, NAMESPACE, "orders") or {}
    assert not binding["metadata"].get("finalizers"), "no finalizer: deletion never hangs"


async def test_missing_queue_gives_a_clear_condition_and_recovers(
    kube: FakeKube, operator: OperatorHandle, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await kube.create(BINDINGS, binding_object(NAMESPACE, "late", _spec(queue_name, moto)))

    await eventually(
        lambda: _cond(kube, "late", "QueueReachable").get("status") == "False", 20, "unreachable"
    )
    reachable = _cond(kube, "late", "QueueReachable")
    assert reachable["reason"] == "QueueNotFound"
    assert f"queue {queue_name} does not exist" in reachable["message"]
    assert "region us-east-1" in reachable["message"]
    ready = _cond(kube, "late", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "QueueNotFound")
    assert "queueDepth" not in _status(kube, "late")

    await _queue(sqs, queue_name, messages=1)  # the timer notices: no restart, no crash loop
    await eventually(
        lambda: _cond(kube, "late", "Ready").get("status") == "True", 20, "Ready after creation"
    )
    assert _status(kube, "late")["queueDepth"]["visible"] == 1


async def test_unreachable_endpoint_is_reported_not_raised(
    kube: FakeKube, operator: OperatorHandle, queue_name: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    spec = {
        "queue": {"name": queue_name, "region": "us-east-1", "endpoint": dead},
        "webhook": {"port": 8080},
    }
    await kube.create(BINDINGS, binding_object(NAMESPACE, "nowhere", spec))
    await eventually(
        lambda: _cond(kube, "nowhere", "QueueReachable").get("reason") == "EndpointUnreachable",
        30,
        "EndpointUnreachable",
    )
    assert dead in _cond(kube, "nowhere", "QueueReachable")["message"]
    assert operator.thread.is_alive()


async def test_invalid_spec_beyond_schema_is_reported_then_fixed(
    kube: FakeKube, operator: OperatorHandle, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await _queue(sqs, queue_name)
    spec = _spec(queue_name, moto, delivery={"retryBackoffBase": "10m", "retryBackoffMax": "1m"})
    await kube.create(BINDINGS, binding_object(NAMESPACE, "bad", spec))

    await eventually(
        lambda: _cond(kube, "bad", "Ready").get("reason") == "InvalidSpec", 20, "InvalidSpec"
    )
    ready = _cond(kube, "bad", "Ready")
    assert ready["status"] == "False"
    assert ready["message"] == (
        "spec.delivery.retryBackoffBase: must not exceed spec.delivery.retryBackoffMax (1m)"
    )
    assert _cond(kube, "bad", "QueueReachable")["status"] == "Unknown"
    await eventually(
        lambda: any(
            e.get("type") == "Warning" and e.get("reason") == "InvalidSpec"
            for e in kube.events(NAMESPACE, "bad")
        ),
        10,
        "a Warning event",
    )

    await kube.patch(BINDINGS, NAMESPACE, "bad", {"spec": {"delivery": {"retryBackoffMax": "1h"}}})
    await eventually(
        lambda: _cond(kube, "bad", "Ready").get("status") == "True", 20, "Ready once fixed"
    )
    assert _status(kube, "bad")["observedGeneration"] == 2
    assert operator.thread.is_alive()


async def test_spec_change_updates_status_and_rolls_out_opted_in_workloads(
    kube: FakeKube, operator: OperatorHandle, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await _queue(sqs, queue_name)
    await kube.create(DEPLOYMENTS, workload_object(NAMESPACE, "worker", "orders"))
    await kube.create(STATEFULSETS, workload_object(NAMESPACE, "ledger", "orders"))
    await kube.create(DEPLOYMENTS, workload_object(NAMESPACE, "other", "payments"))
    await kube.create(DEPLOYMENTS, workload_object(NAMESPACE, "plain", None))
    spec = _spec(queue_name, moto, rolloutOnChange=True)
    await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
    await eventually(lambda: _cond(kube, "orders", "Ready").get("status") == "True", 20, "Ready")
    first = _status(kube, "orders")["sidecarHash"]
    assert RESTARTED_AT not in _template_annotations(kube, DEPLOYMENTS, "worker"), (
        "creating a binding restarts nothing"
    )

    await kube.patch(BINDINGS, NAMESPACE, "orders", {"spec": {"delivery": {"batchSize": 5}}})
    new_spec = {**spec, "delivery": {"batchSize": 5}}
    await eventually(
        lambda: _status(kube, "orders").get("sidecarHash") == sidecar_hash(new_spec),
        20,
        "new hash in status",
    )
    assert _status(kube, "orders")["sidecarHash"] != first
    assert _status(kube, "orders")["settingsHash"] == settings_hash(render_env(new_spec))
    for resource, name in ((DEPLOYMENTS, "worker"), (STATEFULSETS, "ledger")):
        annotations = _template_annotations(kube, resource, name)
        assert annotations[SIDECAR_HASH] == sidecar_hash(new_spec), name
        assert annotations[RESTARTED_AT].endswith("Z"), name
    assert _template_annotations(kube, DEPLOYMENTS, "other") == {}
    assert _template_annotations(kube, DEPLOYMENTS, "plain") == {}
    assert "RolloutRestarted" in _event_reasons(kube, "orders")

    # Idempotent: further handling (kmock replays, timer rounds) restarts nothing again.
    restarted = _template_annotations(kube, DEPLOYMENTS, "worker")[RESTARTED_AT]
    checked = _status(kube, "orders")["lastChecked"]
    await eventually(
        lambda: _status(kube, "orders")["lastChecked"] != checked, 10, "another queue check"
    )
    assert _template_annotations(kube, DEPLOYMENTS, "worker")[RESTARTED_AT] == restarted


async def test_spec_change_without_opt_in_leaves_workloads_alone(
    kube: FakeKube, operator: OperatorHandle, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await _queue(sqs, queue_name)
    await kube.create(DEPLOYMENTS, workload_object(NAMESPACE, "worker", "orders"))
    spec = _spec(queue_name, moto)
    await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
    await eventually(lambda: _cond(kube, "orders", "Ready").get("status") == "True", 20, "Ready")

    await kube.patch(BINDINGS, NAMESPACE, "orders", {"spec": {"sidecar": {"logLevel": "debug"}}})
    new_spec = {**spec, "sidecar": {"logLevel": "debug"}}
    await eventually(
        lambda: _status(kube, "orders").get("settingsHash") == settings_hash(render_env(new_spec)),
        20,
        "new settings hash",
    )
    assert _template_annotations(kube, DEPLOYMENTS, "worker") == {}
    assert not kube.requests("PATCH", "/deployments/")


async def test_bound_pods_follow_the_label(
    kube: FakeKube, operator: OperatorHandle, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await _queue(sqs, queue_name)
    await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", _spec(queue_name, moto)))
    await kube.create(PODS, pod_object(NAMESPACE, "worker-b", "orders"))
    await kube.create(PODS, pod_object(NAMESPACE, "worker-a", "orders"))
    await kube.create(PODS, pod_object(NAMESPACE, "done", "orders", phase="Succeeded"))
    await kube.create(PODS, pod_object(NAMESPACE, "elsewhere", "payments"))
    await kube.create(PODS, pod_object("default", "other-ns", "orders"))

    await eventually(lambda: _status(kube, "orders").get("boundPods") == 2, 20, "2 pods")
    assert _status(kube, "orders")["boundPodNames"] == ["worker-a", "worker-b"]

    await kube.delete(PODS, NAMESPACE, "worker-b")
    await eventually(lambda: _status(kube, "orders").get("boundPods") == 1, 20, "1 pod")
    assert _status(kube, "orders")["boundPodNames"] == ["worker-a"]


async def test_deleting_a_binding_leaves_its_pods_alone(
    kube: FakeKube, operator: OperatorHandle, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await _queue(sqs, queue_name)
    await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", _spec(queue_name, moto)))
    await kube.create(PODS, pod_object(NAMESPACE, "worker", "orders"))
    await eventually(lambda: _status(kube, "orders").get("boundPods") == 1, 20, "bound")
    pod_before = kube.get(PODS, NAMESPACE, "worker")

    await kube.delete(BINDINGS, NAMESPACE, "orders")
    assert kube.get(BINDINGS, NAMESPACE, "orders") is None, "deleted at once: no finalizer"
    await kube.create(PODS, pod_object(NAMESPACE, "after", "orders"))  # an event after deletion
    await eventually(lambda: operator.thread.is_alive(), 1, "alive")
    assert kube.get(PODS, NAMESPACE, "worker") == pod_before
    assert not kube.requests("DELETE", "/pods/")
    assert not kube.requests("PATCH", "/pods/")


async def test_restart_is_idempotent(
    kube: FakeKube,
    operator_config: OperatorSettings,
    moto: MotoServer,
    sqs: Any,
    queue_name: str,
) -> None:
    await _queue(sqs, queue_name)
    await kube.create(DEPLOYMENTS, workload_object(NAMESPACE, "worker", "orders"))
    spec = _spec(queue_name, moto, rolloutOnChange=True)
    await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
    async with running_operator(operator_config):
        await eventually(
            lambda: _cond(kube, "orders", "Ready").get("status") == "True", 20, "Ready"
        )
    before = _status(kube, "orders")
    rendered_events = _event_reasons(kube, "orders").count("SettingsRendered")

    async with running_operator(operator_config):  # resume: the handler runs again
        await eventually(
            lambda: _status(kube, "orders")["lastChecked"] != before["lastChecked"],
            20,
            "a check by the new operator",
        )
    after = _status(kube, "orders")
    assert after["sidecarHash"] == before["sidecarHash"]
    assert after["conditions"] == before["conditions"]  # same transition times: nothing moved
    assert _template_annotations(kube, DEPLOYMENTS, "worker") == {}
    assert _event_reasons(kube, "orders").count("SettingsRendered") == rendered_events


async def test_rollout_disabled_by_the_chart_restarts_nothing_and_says_so(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    """rollout.enabled=false: no RBAC on Deployments, so no PATCH is tried; an Event says why."""
    config = OperatorSettings(
        log_format="plain",
        queue_check_interval=0.5,
        liveness_port=free_port(),
        webhook_port=free_port(),
        rollout_enabled=False,
    )
    await _queue(sqs, queue_name)
    await kube.create(DEPLOYMENTS, workload_object(NAMESPACE, "worker", "orders"))
    spec = _spec(queue_name, moto, rolloutOnChange=True)
    async with running_operator(config):
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        await eventually(
            lambda: _cond(kube, "orders", "Ready").get("status") == "True", 20, "Ready"
        )
        await kube.patch(BINDINGS, NAMESPACE, "orders", {"spec": {"delivery": {"batchSize": 5}}})
        await eventually(
            lambda: "RolloutFailed" in _event_reasons(kube, "orders"), 20, "the warning event"
        )
    warned = [e for e in kube.events(NAMESPACE, "orders") if e["reason"] == "RolloutFailed"]
    assert all("rollout.enabled" in e["message"] for e in warned)
    assert _template_annotations(kube, DEPLOYMENTS, "worker") == {}
    assert not kube.requests("PATCH", "/deployments/")
