"""Pure rules of the validating webhook (:mod:`carrier_operator.validation`)."""

from __future__ import annotations

from typing import Any

import pytest

from carrier_operator.validation import binding_problems

BASE: dict[str, Any] = {"queue": {"name": "q"}, "webhook": {"port": 8080}}


def problems(spec: dict[str, Any], *, remote: bool = False, namespace: str = "team-a") -> list[str]:
    return binding_problems(spec, namespace, allow_remote_webhooks=remote)


def test_a_loopback_binding_passes() -> None:
    assert problems(BASE) == []
    assert problems({**BASE, "healthCheck": {"path": "/health"}}) == []


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"queue": {"name": "q"}, "delivery": {"batchSize": 0}}, "spec.delivery.batchSize"),
        ({"queue": {"name": "bad name!"}}, "spec.queue.name"),
        ({"queue": {"name": "q", "url": "http://x/1/q"}}, "spec.queue.url"),
        ({"queue": {"name": "q"}, "delivery": {"waitTime": "1h"}}, "spec.delivery.waitTime"),
        ({"queue": {"name": "q"}, "healthCheck": {"path": "/h"}}, "spec.healthCheck.path"),
    ],
)
def test_the_sidecars_own_model_rejects(spec: dict[str, Any], fragment: str) -> None:
    found = problems(spec)
    assert len(found) == 1
    assert found[0].startswith(fragment), found


def test_remote_webhook_needs_the_operator_switch() -> None:
    spec = {"queue": {"name": "q"}, "webhook": {"url": "http://worker.team-a.svc:8080/"}}
    assert "is not the pod's loopback" in problems(spec)[0]
    assert problems(spec, remote=True) == []


@pytest.mark.parametrize(
    "host",
    ["worker.team-b.svc", "worker.team-b.svc.cluster.local", "worker.team-b.svc.cluster.local."],
)
def test_remote_webhook_may_not_reach_into_another_namespace(host: str) -> None:
    spec = {"queue": {"name": "q"}, "webhook": {"url": f"http://{host}:8080/"}}
    found = problems(spec, remote=True)
    assert len(found) == 1
    assert "'team-b'" in found[0]
    assert "own namespace 'team-a'" in found[0]


def test_health_check_url_is_held_to_the_same_rule() -> None:
    spec = {**BASE, "healthCheck": {"url": "http://10.0.0.1/health"}}
    assert problems(spec)[0].startswith("spec.healthCheck:")


@pytest.mark.parametrize(
    ("sidecar", "fragment"),
    [
        ({"env": [{"name": "CARRIER_SQS_BATCH_SIZE", "value": "5"}]}, "spec.delivery.batchSize"),
        ({"env": [{"name": "CARRIER_TYPO", "value": "5"}]}, "not a Carrier setting"),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "set twice"),
        ({"env": [{"name": "1BAD", "value": "1"}]}, "not a valid environment variable name"),
        ({"env": [{"name": "A", "value": 1}]}, "must be a string"),
        ({"env": [{"name": "A", "value": "1", "valueFrom": {}}]}, "not both"),
        ({"image": ""}, "spec.sidecar.image"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "is not a quantity"),
        ({"resources": {"claims": []}}, "only requests and limits"),
        ({"httpAddr": "127.0.0.1:9102"}, "the kubelet probes the pod IP"),
        ({"httpAddr": ":8080"}, "the worker's webhook port too"),
    ],
)
def test_sidecar_overrides(sidecar: dict[str, Any], fragment: str) -> None:
    found = problems({**BASE, "sidecar": sidecar})
    assert found, sidecar
    assert any(fragment in p for p in found), found
    assert all("\n" not in p for p in found)


def test_valid_overrides_pass() -> None:
    sidecar = {
        "image": "registry.example/carrier:2",
        "httpAddr": ":9200",
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "1.5Gi"}},
        "env": [
            {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
    }
    assert problems({**BASE, "sidecar": sidecar}) == []
