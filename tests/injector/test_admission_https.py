"""The running injector over real HTTPS: real AdmissionReview v1 in, JSONPatch out, applied with
an independent RFC 6902 implementation, then checked against the official Pod schema (strict),
the "restricted" Pod Security Standard and the injection rules.

One injector (kmock + kopf + our server) serves the whole module; the API server is 1.33, so the
sidecar goes in as a native sidecar.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from carrier_operator.binding import BINDING_LABEL
from carrier_operator.config import INJECTED_ANNOTATION, SIDECAR_CONTAINER
from carrier_operator.injection import AWS_TOKEN_VOLUMES
from tests.injector.conftest import assert_valid_pod, containers, env_of, patched
from tests.injector.harness import Injector, ready_binding, replicaset_pod, running_injector
from tests.support.pss import violations

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

NOT_READY = {  # the operator cannot read the queue: not its business to refuse pods
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "AccessDenied",
            "message": "the operator cannot read the queue",
        },
        {"type": "QueueReachable", "status": "False", "reason": "AccessDenied"},
        {"type": "Valid", "status": "True", "reason": "SpecValid"},
    ]
}
INVALID = {
    "conditions": [
        {
            "type": "Valid",
            "status": "False",
            "reason": "InvalidSpec",
            "message": "spec.delivery.batchSize: must be at most 10",
        },
    ]
}
BINDINGS = [
    ready_binding(
        "team-a",
        "orders",
        {"queue": {"name": "orders-q"}, "webhook": {"port": 8080, "path": "/jobs"}},
    ),
    ready_binding("team-b", "billing"),
    ready_binding("team-a", "unread", status=NOT_READY),
    ready_binding("team-a", "broken", status=INVALID),
    ready_binding("team-a", "fresh", status=None),
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def injector() -> AsyncIterator[Injector]:
    async with running_injector(bindings=BINDINGS) as running:
        yield running


async def inject(
    injector: Injector, pod: dict[str, Any], namespace: str = "team-a"
) -> dict[str, Any]:
    answer = await injector.mutate(pod, namespace=namespace)
    assert answer.status == 200
    assert answer.allowed, answer.message
    assert all(op["op"] == "add" for op in answer.patch), answer.patch
    result = patched(pod, answer.patch)
    assert_valid_pod(result, namespace)
    return result


async def test_replicaset_pod_gets_a_native_sidecar(injector: Injector) -> None:
    pod = replicaset_pod("orders")
    assert "name" not in pod["metadata"]
    assert "namespace" not in pod["metadata"]
    result = await inject(injector, pod)

    sidecar = containers(result, "initContainers")[SIDECAR_CONTAINER]
    assert sidecar["restartPolicy"] == "Always"
    assert list(containers(result)) == ["worker"]
    # The worker only gains the preStop hook that drains the sidecar first (with its token).
    worker = dict(containers(result)["worker"])
    hook = worker.pop("lifecycle")["preStop"]["httpGet"]
    assert worker == pod["spec"]["containers"][0]
    env = env_of(sidecar)
    assert hook["httpHeaders"] == [
        {"name": "X-Carrier-Drain-Token", "value": env["CARRIER_DRAIN_TOKEN"]}
    ]
    assert env["CARRIER_SQS_QUEUE_NAME"] == "orders-q"
    assert env["CARRIER_WEBHOOK_ENDPOINT"] == "http://127.0.0.1:8080/jobs"
    assert sidecar["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": 9102,
        "scheme": "HTTP",
    }
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["image"] == injector.config.sidecar_image
    assert sidecar["resources"]["limits"]["memory"] == injector.config.sidecar_memory_limit
    record = json.loads(result["metadata"]["annotations"][INJECTED_ANNOTATION])
    assert record["binding"] == "orders"
    assert record["native"] is True
    assert len(record["settingsHash"]) == 16


async def test_injected_sidecar_satisfies_the_restricted_profile(injector: Injector) -> None:
    result = await inject(injector, replicaset_pod("orders"))
    sidecar = containers(result, "initContainers")[SIDECAR_CONTAINER]
    # On its own, whatever the pod says: a pod of just the sidecar passes the profile.
    assert violations({"initContainers": [sidecar], "containers": []}) == []
    # The checker is not blind: the sample worker sets nothing, so it fails the profile.
    found = violations(result["spec"])
    assert found
    assert all("[worker]" in v for v in found)


async def test_annotation_key_is_escaped_when_annotations_exist(injector: Injector) -> None:
    pod = replicaset_pod("orders")
    pod["metadata"]["annotations"] = {"team": "a"}
    answer = await injector.mutate(pod, namespace="team-a")
    paths = [op["path"] for op in answer.patch]
    assert "/metadata/annotations/carrier.amplify.security~1injected" in paths
    result = patched(pod, answer.patch)
    assert result["metadata"]["annotations"]["team"] == "a"
    assert INJECTED_ANNOTATION in result["metadata"]["annotations"]


async def test_pod_without_the_label_is_never_touched(injector: Injector) -> None:
    for pod in (
        replicaset_pod(None),
        {
            **replicaset_pod(None),
            "metadata": {"generateName": "x-", "labels": {"carrier": "orders"}},
        },
        {
            **replicaset_pod(None),
            "metadata": {"generateName": "x-", "annotations": {BINDING_LABEL: "orders"}},
        },
    ):
        answer = await injector.mutate(pod, namespace="team-a")
        assert answer.status == 200
        assert answer.allowed
        assert answer.patch == []
        assert "patch" not in answer.response


async def test_binding_in_another_namespace_is_not_used(injector: Injector) -> None:
    # "billing" exists, but in team-b: a pod in team-a must not get it.
    answer = await injector.mutate(replicaset_pod("billing"), namespace="team-a")
    assert not answer.allowed
    assert answer.message == 'CarrierBinding "billing" not found in namespace "team-a"'
    assert answer.patch == []
    # The same pod in team-b gets it.
    result = await inject(injector, replicaset_pod("billing"), namespace="team-b")
    assert SIDECAR_CONTAINER in containers(result, "initContainers")


async def test_object_namespace_disagreeing_with_the_request_is_refused(injector: Injector) -> None:
    pod = replicaset_pod("billing")
    pod["metadata"]["namespace"] = "team-b"
    answer = await injector.mutate(pod, namespace="team-a")
    assert answer.status == 400
    assert not answer.allowed
    assert "differs from request.namespace" in answer.message


async def test_missing_binding_denies_with_an_actionable_message(injector: Injector) -> None:
    answer = await injector.mutate(replicaset_pod("nope"), namespace="team-a")
    assert answer.status == 200
    assert not answer.allowed
    assert answer.response["status"]["code"] == 403
    assert answer.message == 'CarrierBinding "nope" not found in namespace "team-a"'


async def test_invalid_binding_denies_with_its_reason(injector: Injector) -> None:
    answer = await injector.mutate(replicaset_pod("broken"), namespace="team-a")
    assert not answer.allowed
    assert answer.message == (
        'CarrierBinding "broken" in namespace "team-a" is not valid: '
        "InvalidSpec: spec.delivery.batchSize: must be at most 10"
    )
    answer = await injector.mutate(replicaset_pod("fresh"), namespace="team-a")
    assert not answer.allowed
    assert "is not validated yet" in answer.message


async def test_a_queue_the_operator_cannot_read_still_admits(injector: Injector) -> None:
    """Valid is the gate; Ready=False from the operator's own queue read is not."""
    answer = await injector.mutate(replicaset_pod("unread"), namespace="team-a")
    assert answer.allowed, answer.message
    pod = patched(replicaset_pod("unread"), answer.patch)
    assert "carrier" in containers(pod) | containers(pod, "initContainers")


async def test_reinvocation_and_already_injected_pods_are_unchanged(injector: Injector) -> None:
    once = await inject(injector, replicaset_pod("orders"))
    again = await injector.mutate(once, namespace="team-a")
    assert again.allowed
    assert again.patch == []
    # Annotation only (sidecar removed on purpose by someone): not re-added either.
    stripped = json.loads(json.dumps(once))
    stripped["spec"].pop("initContainers")
    assert (await injector.mutate(stripped, namespace="team-a")).patch == []


async def test_pod_with_an_existing_native_sidecar(injector: Injector) -> None:
    mesh = {
        "name": "mesh-proxy",
        "image": "example/proxy:1",
        "restartPolicy": "Always",
        "ports": [{"containerPort": 15001, "protocol": "TCP"}],
    }
    init = {"name": "migrate", "image": "example/migrate:1"}
    pod = replicaset_pod("orders", initContainers=[init, mesh])
    result = await inject(injector, pod)
    names = [c["name"] for c in result["spec"]["initContainers"]]
    assert names == ["migrate", "mesh-proxy", SIDECAR_CONTAINER]  # appended: after the others
    assert result["spec"]["initContainers"][1] == mesh


async def test_irsa_env_and_token_mount_are_copied(injector: Injector) -> None:
    token = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
    worker = {
        "name": "worker",
        "image": "example/worker:1",
        "env": [
            {"name": "LOG_LEVEL", "value": "debug"},
            {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
            {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"},
            {"name": "AWS_REGION", "value": "eu-west-1"},
            {"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/orders"},
            {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": f"{token}/token"},
        ],
        "volumeMounts": [{"name": "aws-iam-token", "mountPath": token, "readOnly": True}],
    }
    volume = {
        "name": "aws-iam-token",
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": "sts.amazonaws.com",
                        "expirationSeconds": 86400,
                        "path": "token",
                    }
                }
            ]
        },
    }
    pod = replicaset_pod("orders", containers=[worker], volumes=[volume])
    result = await inject(injector, pod)
    sidecar = containers(result, "initContainers")[SIDECAR_CONTAINER]
    env = env_of(sidecar)
    assert env["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/orders"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == f"{token}/token"
    assert env["AWS_REGION"] == "eu-west-1"
    assert "LOG_LEVEL" not in env  # only the identity env, not the worker's own
    assert sidecar["volumeMounts"] == [
        {"name": "aws-iam-token", "mountPath": token, "readOnly": True}
    ]
    assert result["spec"]["volumes"] == [volume]  # the pod's volume is reused, not duplicated


async def test_reinvocation_adds_pod_identity_env_added_after_us(injector: Injector) -> None:
    # First pass: no AWS env anywhere. Then the EKS pod-identity webhook runs and adds its env
    # and token to the containers it saw (not ours); the API server re-invokes us (IfNeeded).
    first = await inject(injector, replicaset_pod("orders"))
    mount = "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"
    worker = first["spec"]["containers"][0]
    worker["env"] = [
        {
            "name": "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "value": "http://169.254.170.23/v1/credentials",
        },
        {
            "name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "value": f"{mount}/eks-pod-identity-token",
        },
    ]
    worker["volumeMounts"] = [
        {"name": "eks-pod-identity-token", "mountPath": mount, "readOnly": True}
    ]
    first["spec"]["volumes"] = [
        {
            "name": "eks-pod-identity-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "pods.eks.amazonaws.com",
                            "path": "eks-pod-identity-token",
                        }
                    }
                ]
            },
        }
    ]
    answer = await injector.mutate(first, namespace="team-a")
    assert answer.allowed
    assert answer.patch, "the missing AWS env must be added on re-invocation"
    assert all(
        op["op"] == "add" and op["path"].startswith("/spec/initContainers/0/")
        for op in answer.patch
    )
    second = patched(first, answer.patch)
    assert_valid_pod(second)
    sidecar = containers(second, "initContainers")[SIDECAR_CONTAINER]
    assert env_of(sidecar)["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://169.254.170.23")
    assert [m["name"] for m in sidecar["volumeMounts"]] == ["eks-pod-identity-token"]
    # And a third pass changes nothing: idempotent.
    assert (await injector.mutate(second, namespace="team-a")).patch == []
    assert set(AWS_TOKEN_VOLUMES) >= {"aws-iam-token", "eks-pod-identity-token"}


async def test_port_conflict_with_the_worker_is_refused(injector: Injector) -> None:
    worker = {"name": "worker", "image": "w:1", "ports": [{"containerPort": 9102}]}
    answer = await injector.mutate(
        replicaset_pod("orders", containers=[worker]), namespace="team-a"
    )
    assert not answer.allowed
    assert "port 9102" in answer.message
    assert "spec.sidecar.httpAddr" in answer.message


async def test_short_grace_period_admits_with_a_warning(injector: Injector) -> None:
    answer = await injector.mutate(
        replicaset_pod("orders", terminationGracePeriodSeconds=5), namespace="team-a"
    )
    assert answer.allowed
    assert any("terminationGracePeriodSeconds 5" in w for w in answer.response.get("warnings", []))


async def test_validating_webhook_admits_a_good_binding(injector: Injector) -> None:
    answer = await injector.validate(ready_binding("team-a", "new", status=None))
    assert answer.status == 200
    assert answer.allowed, answer.message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"queue": {}}, "spec.queue.name: set the queue name"),
        ({"queue": {"name": "q"}, "delivery": {"batchSize": 20}}, "spec.delivery.batchSize"),
        (
            {"queue": {"name": "q"}, "webhook": {"url": "http://orders.team-a.svc:80/"}},
            "is not the pod's loopback",
        ),
        (
            {
                "queue": {"name": "q"},
                "webhook": {"port": 8080},
                "sidecar": {"env": [{"name": "CARRIER_SQS_BATCH_SIZE", "value": "2"}]},
            },
            "spec.sidecar.env[0]",
        ),
        (
            {
                "queue": {"name": "q"},
                "webhook": {"port": 8080},
                "sidecar": {"httpAddr": "127.0.0.1:9102"},
            },
            "spec.sidecar.httpAddr",
        ),
    ],
)
async def test_validating_webhook_rejects_what_the_schema_cannot(
    injector: Injector, spec: dict[str, Any], expected: str
) -> None:
    answer = await injector.validate(ready_binding("team-a", "bad", spec, status=None))
    answer.assert_binding_refused(expected)


async def test_the_served_certificate_is_the_one_in_the_secret_and_the_bundle(
    injector: Injector,
) -> None:
    from carrier_operator.pki import from_secret_data

    secret = injector.kube.get("v1/secrets", "carrier-system", injector.config.cert_secret)
    assert secret is not None
    stored = from_secret_data(secret["data"])
    assert stored is not None
    assert injector.server.material == stored
    for resource, name in (
        (
            "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            injector.config.mutating_webhook_configuration,
        ),
        (
            "admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            injector.config.validating_webhook_configuration,
        ),
    ):
        config = injector.kube.get(resource, None, name)
        assert config is not None
        import base64

        assert (
            base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"]) == stored.ca_bundle
        )
        assert config["webhooks"][0]["clientConfig"]["service"]["path"].startswith("/")
    assert injector.server.internal_errors == 0
