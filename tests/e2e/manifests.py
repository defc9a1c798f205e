"""The objects the e2e suite applies, as plain dicts (also checked offline by test_manifests.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

APP_NS = "carrier-e2e"
SYSTEM_NS = "carrier-system"
TAG = "e2e"
SQS_PORT = 5000
BINDING = "orders"
QUEUE = "e2e-orders"
RECORDS = "e2e-received"
LABEL = "carrier.amplify.security/binding"

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
AWS_DUMMY = [
    {"name": "AWS_ACCESS_KEY_ID", "value": "e2e"},
    {"name": "AWS_SECRET_ACCESS_KEY", "value": "e2e"},
    {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
]


def moto() -> list[dict[str, Any]]:
    labels = {"app": "sqs"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "sqs", "namespace": APP_NS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "moto",
                                "image": f"carrier-e2e-moto:{TAG}",
                                "imagePullPolicy": "Never",
                                "ports": [{"containerPort": SQS_PORT}],
                                "securityContext": RESTRICTED,
                                "readinessProbe": {"tcpSocket": {"port": SQS_PORT}},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "sqs", "namespace": APP_NS},
            "spec": {"selector": labels, "ports": [{"port": SQS_PORT}]},
        },
    ]


def binding(
    endpoint: str, *, batch_size: int, name: str = BINDING, queue: str = QUEUE
) -> dict[str, Any]:
    return {
        "apiVersion": "carrier.amplify.security/v1alpha1",
        "kind": "CarrierBinding",
        "metadata": {"name": name, "namespace": APP_NS},
        "spec": {
            "queue": {"name": queue, "endpoint": endpoint, "region": "us-east-1"},
            "delivery": {"batchSize": batch_size, "shutdownTimeout": "20s"},
            "webhook": {"port": 8080, "path": "/"},
            "sidecar": {"env": AWS_DUMMY},
            "rolloutOnChange": True,
        },
    }


def worker(
    endpoint: str, *, name: str = "worker", binding_name: str = BINDING, replicas: int = 1
) -> list[dict[str, Any]]:
    labels = {"app": name, LABEL: binding_name}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "worker", "namespace": APP_NS},
            "data": {"worker.py": Path(__file__).with_name("worker.py").read_text()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": APP_NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 40,
                        "containers": [
                            {
                                "name": "worker",
                                # Any Python with botocore will do: reuse the sidecar image.
                                "image": f"carrier-sidecar:{TAG}",
                                "imagePullPolicy": "Never",
                                "command": ["python", "/app/worker.py"],
                                "env": [{"name": "SQS_ENDPOINT", "value": endpoint}, *AWS_DUMMY],
                                "volumeMounts": [{"name": "app", "mountPath": "/app"}],
                                "securityContext": {**RESTRICTED, "readOnlyRootFilesystem": True},
                            }
                        ],
                        "volumes": [{"name": "app", "configMap": {"name": "worker"}}],
                    },
                },
            },
        },
    ]


def labelled_pod(binding_name: str = BINDING) -> dict[str, Any]:
    """A bare labelled pod, created with ``--dry-run=server``: a full trip through admission."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "admission-probe-",
            "namespace": APP_NS,
            "labels": {"app": "admission-probe", LABEL: binding_name},
        },
        "spec": {
            "containers": [
                {
                    "name": "worker",
                    "image": f"carrier-sidecar:{TAG}",
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "pass"],
                    "securityContext": {**RESTRICTED, "readOnlyRootFilesystem": True},
                }
            ]
        },
    }


FLOODER = "probe-flooder"


def flooder(
    target_ip: str, port: int, seconds: int, concurrency: int = 1000
) -> list[dict[str, Any]]:
    """A pod on the pod network that floods a sidecar's probe port (tests/e2e/flooder.py): what
    anything in the cluster can do, since the port listens on the pod IP."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": FLOODER, "namespace": APP_NS},
            "data": {"flooder.py": Path(__file__).with_name("flooder.py").read_text()},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": FLOODER, "namespace": APP_NS, "labels": {"app": FLOODER}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "flooder",
                        "image": f"carrier-sidecar:{TAG}",
                        "imagePullPolicy": "Never",
                        "command": [
                            *("python", "/app/flooder.py", f"http://{target_ip}:{port}"),
                            *(str(seconds), str(concurrency)),
                        ],
                        "volumeMounts": [{"name": "app", "mountPath": "/app"}],
                        "securityContext": {**RESTRICTED, "readOnlyRootFilesystem": True},
                    }
                ],
                "volumes": [{"name": "app", "configMap": {"name": FLOODER}}],
            },
        },
    ]


# --- autoscaling (test_kind_keda.py) ------------------------------------------------------------
SCALED = "scaled"
SCALED_QUEUE = "e2e-scaled"
SCALED_WORKER = "scaled-worker"
KEDA_AUTH = "keda-aws"


def keda_auth() -> list[dict[str, Any]]:
    """The Secret and TriggerAuthentication KEDA's SQS scaler uses against the in-cluster moto
    (static keys: moto takes any), named by the binding's ``autoscaling.authenticationRef``."""
    keys = {"AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": KEDA_AUTH, "namespace": APP_NS},
            "type": "Opaque",
            "stringData": keys,
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": KEDA_AUTH, "namespace": APP_NS},
            "spec": {
                "secretTargetRef": [
                    {"parameter": "awsAccessKeyID", "name": KEDA_AUTH, "key": "AWS_ACCESS_KEY_ID"},
                    {
                        "parameter": "awsSecretAccessKey",
                        "name": KEDA_AUTH,
                        "key": "AWS_SECRET_ACCESS_KEY",
                    },
                ]
            },
        },
    ]


def scaled_binding(endpoint: str) -> dict[str, Any]:
    """A binding that scales its worker from 0 to 4 on the queue's depth (KEDA's SQS scaler)."""
    manifest = binding(endpoint, batch_size=5, name=SCALED, queue=SCALED_QUEUE)
    manifest["spec"]["autoscaling"] = {
        "target": {"kind": "Deployment", "name": SCALED_WORKER},
        "minReplicas": 0,
        "maxReplicas": 4,
        "messagesPerReplica": 10,
        "pollingSeconds": 5,
        "cooldownSeconds": 30,
        "authenticationRef": {"name": KEDA_AUTH},
    }
    return manifest
