"""The kind cluster, the images and the Helm release the e2e suite runs against.

Runs only when asked (`make e2e`, i.e. `pytest -m e2e`, or CARRIER_E2E=1) and where Docker and
kind exist; everywhere else every test skips with the reason. CARRIER_E2E_CLUSTER=<name> reuses
an existing kind cluster; CARRIER_E2E_KEEP=1 keeps the cluster created here.

CARRIER_E2E_REQUIRED=1 (set by the workflow) turns every skip of this suite into a failure that
gives the reason: the workflow cannot go green by running nothing.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .kube import ROOT, Kube, poll, run, tool
from .manifests import APP_NS, AWS_DUMMY, SQS_PORT, SYSTEM_NS, TAG, moto


def _why_not(config: pytest.Config) -> str | None:
    wanted = os.environ.get("CARRIER_E2E") == "1" or "e2e" in (config.option.markexpr or "")
    if not wanted or "not e2e" in (config.option.markexpr or ""):
        return "e2e runs only on request: `make e2e` (pytest -m e2e) or CARRIER_E2E=1"
    for name in ("docker", "kind", "helm", "kubectl"):
        if tool(name) is None:
            return f"{name} not found (e2e needs Docker, kind, helm and kubectl)"
    docker = subprocess.run(
        [str(tool("docker")), "info"], capture_output=True, text=True, timeout=30, check=False
    )
    if docker.returncode:
        return f"`docker info` failed: no Docker engine ({docker.stderr.strip()[:120]})"
    return None


REQUIRED = "CARRIER_E2E_REQUIRED"


def _required() -> bool:
    return os.environ.get(REQUIRED) == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With CARRIER_E2E_REQUIRED=1, a skipped e2e test (at setup or in its body) fails."""
    outcome: Any = yield
    report = outcome.get_result()
    if _required() and report.skipped and item.get_closest_marker("e2e") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"{REQUIRED}=1: this e2e test may not skip, but it did: {reason}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    for item in items:
        if item.get_closest_marker("e2e") is None:
            continue
        reason = reason or _why_not(config) or ""
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    kind = str(tool("kind"))
    name = os.environ.get("CARRIER_E2E_CLUSTER") or f"carrier-e2e-{uuid.uuid4().hex[:6]}"
    created = not os.environ.get("CARRIER_E2E_CLUSTER")
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    if created:
        run(
            kind,
            "create",
            "cluster",
            "--name",
            name,
            "--kubeconfig",
            str(kubeconfig),
            "--wait",
            "180s",
            timeout=420,
        )
    else:
        kubeconfig.write_text(run(kind, "get", "kubeconfig", "--name", name))
    try:
        _build_and_load(kind, name)
        yield Kube(kubeconfig)
    finally:
        if created and os.environ.get("CARRIER_E2E_KEEP") != "1":
            run(kind, "delete", "cluster", "--name", name, timeout=180, check=False)


def _build_and_load(kind: str, cluster: str) -> None:
    docker = str(tool("docker"))
    import moto as moto_package

    images = {
        f"carrier-sidecar:{TAG}": ["-f", str(ROOT / "Dockerfile.sidecar"), str(ROOT)],
        f"carrier-operator:{TAG}": ["-f", str(ROOT / "Dockerfile.operator"), str(ROOT)],
    }
    for image, args in images.items():
        run(docker, "build", "-t", image, *args, timeout=900)
    # The in-cluster SQS server: the moto version the rest of the suite tests against.
    moto_dockerfile = (
        "FROM python:3.11-slim-bookworm\n"
        f"RUN pip install --no-cache-dir 'moto[server]=={moto_package.__version__}'\n"
        "USER 65532:65532\n"
        f'ENTRYPOINT ["moto_server", "-H", "0.0.0.0", "-p", "{SQS_PORT}"]\n'
    )
    run(docker, "build", "-t", f"carrier-e2e-moto:{TAG}", "-", input=moto_dockerfile, timeout=900)
    for image in [*images, f"carrier-e2e-moto:{TAG}"]:
        run(kind, "load", "docker-image", image, "--name", cluster, timeout=300)


@pytest.fixture(scope="session")
def sqs_endpoint() -> str:
    return f"http://sqs.{APP_NS}.svc:{SQS_PORT}"


@pytest.fixture(scope="session")
def release(kube: Kube, sqs_endpoint: str) -> str:
    """The app namespace (restricted PSS enforced), moto in it, and the chart installed."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": APP_NS,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
        *moto(),
    )
    kube("-n", APP_NS, "rollout", "status", "deployment/sqs", "--timeout=180s", timeout=200)
    helm = str(tool("helm"))
    run(
        helm,
        "--kubeconfig",
        str(kube.kubeconfig),
        "install",
        "carrier",
        str(ROOT / "charts/carrier"),
        "--namespace",
        SYSTEM_NS,
        "--create-namespace",
        "--wait",
        "--timeout",
        "240s",
        "--set",
        "image.repository=carrier-operator",
        "--set",
        f"image.tag={TAG}",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        "sidecar.image.repository=carrier-sidecar",
        "--set",
        f"sidecar.image.tag={TAG}",
        "--set",
        "sidecar.image.pullPolicy=Never",
        "--set",
        "operator.logFormat=plain",
        "--set",
        "operator.queueCheckInterval=5",
        "--set",
        "rollout.enabled=true",  # test_binding_change_rolls_the_worker_out
        "--set",
        "autoscaling.enabled=true",  # test_kind_keda.py (KEDA itself is installed there)
        *[
            arg
            for i, env in enumerate(AWS_DUMMY)
            for arg in (
                "--set",
                f"operator.extraEnv[{i}].name={env['name']}",
                "--set",
                f"operator.extraEnv[{i}].value={env['value']}",
            )
        ],
        timeout=300,
    )
    # The operator patched the caBundle: the injector is reachable through the API server.
    poll(
        lambda: kube.get("mutatingwebhookconfiguration", "carrier-injector")["webhooks"][0][
            "clientConfig"
        ].get("caBundle"),
        timeout=120,
        what="the operator to patch the injector's caBundle",
    )
    return "carrier"


@pytest.fixture(scope="session")
def cluster_sqs(kube: Kube, release: str) -> Iterator[object]:
    """A boto3 SQS client on the in-cluster moto, through a port-forward."""
    import boto3

    with kube.port_forward(APP_NS, "svc/sqs", SQS_PORT) as port:
        yield boto3.client(
            "sqs",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="e2e",
            aws_secret_access_key="e2e",
        )


# END
