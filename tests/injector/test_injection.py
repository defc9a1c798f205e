"""Pure rules of :mod:`carrier_operator.injection`: no server, tables of inputs and outputs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from carrier_operator.binding import render_env, settings_hash
from carrier_operator.config import INJECTED_ANNOTATION, SIDECAR_CONTAINER, OperatorSettings
from carrier_operator.injection import (
    Binding,
    InjectionError,
    apply_patch,
    escape_pointer,
    injected_record,
    plan_injection,
    readiness_problem,
    sidecar_container,
)
from tests.injector.conftest import assert_valid_pod, containers, env_of, patched
from tests.injector.harness import READY, replicaset_pod
from tests.support.pss import violations

CONFIG = OperatorSettings()
SPEC = {"queue": {"name": "orders-q"}, "webhook": {"port": 8080, "path": "/jobs"}}
BINDING = Binding("orders", "team-a", SPEC, READY)


def pod_in(namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    pod = replicaset_pod("orders", **spec)
    pod["metadata"]["namespace"] = namespace
    return pod


def test_readiness_problems() -> None:
    assert readiness_problem("b", "ns", None) == 'CarrierBinding "b" not found in namespace "ns"'
    assert readiness_problem("b", "ns", BINDING) is None
    pending = Binding("b", "ns", SPEC, {})
    assert "not validated yet" in str(readiness_problem("b", "ns", pending))
    invalid = Binding("b", "ns", SPEC, {"conditions": [{"type": "Valid", "status": "False"}]})
    assert readiness_problem("b", "ns", invalid) == (
        'CarrierBinding "b" in namespace "ns" is not valid: NotValid'
    )
    unread = {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "AccessDenied"},
            {"type": "Valid", "status": "True", "reason": "SpecValid"},
        ]
    }
    assert readiness_problem("b", "ns", Binding("b", "ns", SPEC, unread)) is None
    # A status from before Valid existed: Ready stands in, but only an InvalidSpec refuses.
    legacy = {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "bad"}
    assert readiness_problem("b", "ns", Binding("b", "ns", SPEC, {"conditions": [legacy]})) == (
        'CarrierBinding "b" in namespace "ns" is not valid: InvalidSpec: bad'
    )
    queue_only = {"conditions": [{"type": "Ready", "status": "False", "reason": "QueueNotFound"}]}
    assert readiness_problem("b", "ns", Binding("b", "ns", SPEC, queue_only)) is None


def test_regular_container_mode_appends_to_containers() -> None:
    pod = pod_in()
    plan = plan_injection(pod, BINDING, CONFIG, native=False)
    result = patched(pod, plan.patch)
    assert_valid_pod(result)
    assert list(containers(result)) == ["worker", SIDECAR_CONTAINER]
    assert "restartPolicy" not in containers(result)[SIDECAR_CONTAINER]
    assert "initContainers" not in result["spec"]


def test_our_applier_and_an_independent_one_agree() -> None:
    for native in (True, False):
        pod = pod_in(initContainers=[{"name": "init", "image": "i:1"}])
        pod["metadata"]["annotations"] = {"a/b": "c"}
        plan = plan_injection(pod, BINDING, CONFIG, native=native)
        ours = copy.deepcopy(pod)
        apply_patch(ours, plan.patch)
        assert ours == patched(pod, plan.patch)


def test_patch_is_add_only_and_minimal() -> None:
    pod = pod_in()
    plan = plan_injection(pod, BINDING, CONFIG, native=True)
    assert [op["op"] for op in plan.patch] == ["add", "add", "add"]
    assert [op["path"] for op in plan.patch] == [
        "/spec/initContainers",
        "/metadata/annotations",
        "/spec/containers/0/lifecycle",
    ]


def test_annotation_records_binding_hash_and_mode() -> None:
    result = patched(pod_in(), plan_injection(pod_in(), BINDING, CONFIG, native=True).patch)
    record = injected_record(result)
    assert record is not None
    assert record["binding"] == "orders"
    assert record["settingsHash"] == settings_hash(render_env(SPEC))
    assert record["native"] is True
    assert json.loads(result["metadata"]["annotations"][INJECTED_ANNOTATION]) == record


def test_escape_pointer() -> None:
    assert (
        escape_pointer("carrier.amplify.security/injected") == "carrier.amplify.security~1injected"
    )
    assert escape_pointer("a~b/c") == "a~0b~1c"


def test_binding_overrides_image_resources_and_extra_env() -> None:
    spec = {
        **SPEC,
        "sidecar": {
            "image": "registry.example/carrier:2",
            "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "64Mi"}},
            "env": [
                {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
        },
    }
    container = sidecar_container(spec, CONFIG, native=True)
    assert container["image"] == "registry.example/carrier:2"
    assert container["resources"] == spec["sidecar"]["resources"]  # type: ignore[index]
    env = env_of(container)
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["TOKEN"] == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert env["CARRIER_SQS_QUEUE_NAME"] == "orders-q"


def test_probes_follow_the_http_addr_and_vanish_when_it_is_off() -> None:
    moved = sidecar_container({**SPEC, "sidecar": {"httpAddr": ":9200"}}, CONFIG, native=False)
    assert moved["readinessProbe"]["httpGet"]["port"] == 9200
    assert moved["ports"][0]["containerPort"] == 9200
    off = sidecar_container({**SPEC, "sidecar": {"httpAddr": "none"}}, CONFIG, native=False)
    assert "readinessProbe" not in off
    assert "ports" not in off


def test_sidecar_is_restricted_in_both_modes() -> None:
    for native in (True, False):
        assert violations({"containers": [sidecar_container(SPEC, CONFIG, native=native)]}) == []


def test_an_invalid_binding_is_refused_naming_the_field() -> None:
    bad = Binding(
        "orders", "team-a", {"queue": {"name": "q"}, "delivery": {"batchSize": 99}}, READY
    )
    with pytest.raises(InjectionError, match=r"spec\.delivery\.batchSize"):
        plan_injection(pod_in(), bad, CONFIG, native=True)


@pytest.mark.parametrize(
    "spec",
    [
        {"containers": "nope"},
        {"containers": [1]},
        {},
        {"containers": [], "initContainers": {"a": 1}},
    ],
)
def test_malformed_pods_are_refused_not_crashed(spec: dict[str, Any]) -> None:
    with pytest.raises(InjectionError):
        plan_injection({"metadata": {}, "spec": spec}, BINDING, CONFIG, native=True)


def test_already_injected_pod_gets_an_empty_patch() -> None:
    pod = pod_in()
    once = patched(pod, plan_injection(pod, BINDING, CONFIG, native=True).patch)
    for native in (True, False):
        assert plan_injection(once, BINDING, CONFIG, native=native).patch == []
    # A container named "carrier" that the user wrote counts as the sidecar too.
    own = pod_in(containers=[{"name": SIDECAR_CONTAINER, "image": "mine"}])
    assert plan_injection(own, BINDING, CONFIG, native=True).patch == []


def test_identity_env_is_only_copied_with_its_volume() -> None:
    worker = {
        "name": "worker",
        "image": "w",
        "env": [{"name": "AWS_ROLE_ARN", "value": "arn"}],
        "volumeMounts": [{"name": "aws-iam-token", "mountPath": "/t"}],
    }
    pod = pod_in(containers=[worker])  # no pod volume named aws-iam-token
    result = patched(pod, plan_injection(pod, BINDING, CONFIG, native=True).patch)
    sidecar = containers(result, "initContainers")[SIDECAR_CONTAINER]
    assert env_of(sidecar)["AWS_ROLE_ARN"] == "arn"
    assert "volumeMounts" not in sidecar  # a mount of a missing volume would make the pod invalid
