"""The operator's own API calls carry its credentials, whatever kind they are (issue 11 §4).

Four ways an operator authenticates: an in-cluster service-account token file, a kubeconfig
with a bearer token, one with an exec plugin (EKS, GKE), one with a client certificate (kind).
For each, against the authenticating fake API: ``/version``, the webhook's certificate Secret
and a status write succeed, and a request without credentials is refused with 401.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from carrier_operator.config import OperatorSettings
from carrier_operator.kubeapi import KubeAPI, KubeAPIError
from carrier_operator.status_writer import StatusWriter
from tests.support.kube import (
    BINDINGS,
    SECRETS,
    FakeKube,
    binding_object,
    fake_kube,
    running_operator,
)
from tests.support.kube_access import OPERATOR
from tests.support.servers import MotoServer, eventually, free_port

NAMESPACE = "team-a"
CONFIG = OperatorSettings()
SECRET_PATH = f"/api/v1/namespaces/{CONFIG.service_namespace}/secrets/{CONFIG.cert_secret}"


@pytest.fixture(autouse=True)
def out_of_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KUBERNETES_SERVICE_HOST unless a test sets it: the kubeconfig decides."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fake_kube(namespaces=("default", NAMESPACE), tls=True) as api:
        await api.create(BINDINGS, binding_object(NAMESPACE, "orders", {"queue": {}}))
        yield api


async def _operator_calls_succeed(kube: FakeKube, api: KubeAPI) -> None:
    """The calls the operator makes itself, each answered as the operator's identity."""
    before = len(kube.served(user=OPERATOR.user))
    try:
        version = await api.server_version()
        assert version.get("major") == "1"
        assert await api.get(SECRET_PATH) is None  # allowed by the chart's Role, not there yet
        secret = {"metadata": {"name": CONFIG.cert_secret, "namespace": CONFIG.service_namespace}}
        await api.request("POST", SECRET_PATH.rsplit("/", 1)[0], secret)
        assert await api.get(SECRET_PATH) is not None
        statuses = StatusWriter(api)
        statuses.observed((NAMESPACE, "orders")).pods = ("worker",)
        assert await statuses.publish((NAMESPACE, "orders"))
    finally:
        await api.close()
    assert kube.status(BINDINGS, NAMESPACE, "orders").get("boundPods") == 1
    assert kube.get(SECRETS, CONFIG.service_namespace, CONFIG.cert_secret) is not None
    mine = kube.served(user=OPERATOR.user)[before:]
    assert [entry.status for entry in mine] == [200, 404, 200, 200, 200], mine


async def _unauthenticated_is_refused(kube: FakeKube) -> None:
    assert kube.ca is not None
    connector = aiohttp.TCPConnector(ssl=kube.ca.client_context())
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(kube.url + SECRET_PATH) as response,
    ):
        assert response.status == 401
        body = await response.json()
        assert (body["kind"], body["code"]) == ("Status", 401)
    with pytest.raises(KubeAPIError) as refused:
        await KubeAPI(kube.url, ca_file=str(kube.ca.ca_file)).server_version()
    assert refused.value.status == 401


async def test_in_cluster_service_account_token(
    kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kube.ca is not None
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text("projected-sa-token")
    (sa_dir / "ca.crt").write_bytes(kube.ca.ca_file.read_bytes())
    kube.add_token("projected-sa-token", OPERATOR)
    host, port = kube.url.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    kube.write_kubeconfig({"token": "not-this-one"})  # in a pod, the kubeconfig is not used

    api = await KubeAPI.from_environment(sa_dir=sa_dir)
    assert api.server == kube.url
    await _operator_calls_succeed(kube, api)
    await _unauthenticated_is_refused(kube)


async def test_bearer_token_kubeconfig(kube: FakeKube) -> None:
    kube.write_kubeconfig({"token": kube.operator_token})
    await _operator_calls_succeed(kube, await KubeAPI.from_environment())
    await _unauthenticated_is_refused(kube)


def _exec_plugin(directory: Path) -> tuple[Path, Path]:
    """A real executable printing an ExecCredential whose token changes on every run and
    expires soon (inside the client's 5-minute skew, so the client re-runs it when asked)."""
    counter = directory / "runs"
    counter.write_text("0")
    script = directory / "credential-plugin"
    script.write_text(
        f"""#!{sys.executable}
import datetime, json, pathlib
counter = pathlib.Path({str(counter)!r})
runs = int(counter.read_text()) + 1
counter.write_text(str(runs))
expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)
print(json.dumps({{
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {{"token": f"exec-token-{{runs}}",
               "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}},
}}))
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, counter


def _exec_user(script: Path) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(script),
            "interactiveMode": "Never",
        }
    }


async def test_exec_plugin_kubeconfig_and_an_expired_token_is_fetched_again(
    kube: FakeKube, tmp_path: Path
) -> None:
    script, runs = _exec_plugin(tmp_path)
    for n in range(1, 50):
        kube.add_token(f"exec-token-{n}", OPERATOR)
    kube.write_kubeconfig(_exec_user(script))
    await _operator_calls_succeed(kube, await KubeAPI.from_environment())
    await _unauthenticated_is_refused(kube)

    # The token it got has expired and the server no longer takes it: the next call runs the
    # plugin again rather than sending the stale token.
    api = await KubeAPI.from_environment()
    try:
        used = int(runs.read_text())
        for n in range(1, used + 1):
            kube.access.tokens.pop(f"exec-token-{n}")
        assert (await api.server_version()).get("major") == "1"
        assert int(runs.read_text()) > used
    finally:
        await api.close()


async def test_client_certificate_kubeconfig(kube: FakeKube) -> None:
    cert, key = kube.issue_client_cert(OPERATOR)
    kube.write_kubeconfig({"client-certificate": str(cert), "client-key": str(key)})
    await _operator_calls_succeed(kube, await KubeAPI.from_environment())
    await _unauthenticated_is_refused(kube)


async def test_the_operator_runs_on_an_exec_plugin_kubeconfig(
    tmp_path: Path, moto: MotoServer
) -> None:
    """End to end: kopf and the operator's own client both authenticate through the plugin,
    so the binding's status (written by our client, not kopf's) appears."""
    script, _ = _exec_plugin(tmp_path)
    async with fake_kube(namespaces=("default", NAMESPACE)) as kube:
        for n in range(1, 200):
            kube.add_token(f"exec-token-{n}", OPERATOR)
        kube.write_kubeconfig(_exec_user(script))
        config = OperatorSettings(
            log_format="plain", liveness_port=free_port(), webhook_port=free_port()
        )
        spec = {
            "queue": {"name": "q", "region": "us-east-1", "endpoint": moto.endpoint},
            "webhook": {"port": 8080, "path": "/jobs"},
        }
        async with running_operator(config):
            await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
            await eventually(
                lambda: kube.status(BINDINGS, NAMESPACE, "orders").get("conditions"),
                30,
                "a status written by the operator",
            )
        assert not [e for e in kube.served() if e.user is None and e.status != 401]
        assert not [e for e in kube.served(user=OPERATOR.user) if e.status == 401]
        patched = kube.served("PATCH", "/orders/status", user=OPERATOR.user)
        assert patched
        assert {e.status for e in patched} == {200}
