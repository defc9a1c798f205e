"""The injector as it runs in the operator: kopf's admission machinery, our HTTPS server and
certificates, against the shared fake Kubernetes API (kmock, :mod:`tests.support.kube`).

Only the injector's handlers are registered (a private kopf registry), so the reconciler's
handlers do not run here; everything else is the production path: the cert is created in a
Secret through the API, the caBundle is patched into the webhook configurations, bindings reach
the handler through kopf's index, and reviews arrive over real HTTPS verified against the CA.
Also used by ``bench/admission.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf

from carrier_operator import admission
from carrier_operator.binding import BINDING_LABEL
from carrier_operator.config import MUTATE_PODS_ID, VALIDATE_BINDINGS_ID, OperatorSettings
from carrier_operator.kubeapi import KubeAPI
from carrier_operator.webhook_server import InjectorServer
from tests.support.kube import (
    BINDINGS,
    MUTATING_WEBHOOKS,
    NODES,
    SECRETS,
    VALIDATING_WEBHOOKS,
    FakeKube,
    binding_object,
    fake_kube,
    node_object,
)
from tests.support.servers import free_port

NAMESPACES = ("default", "team-a", "team-b", "carrier-system")
# A current cluster unless a test says otherwise: native sidecars in ``auto`` mode.
DEFAULT_NODES = (node_object("node-1", "v1.33.1"), node_object("node-2", "v1.33.1"))
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "QueueReachable"}]}


def ready_binding(
    namespace: str, name: str, spec: Mapping[str, Any] | None = None, status: Any = READY
) -> dict[str, Any]:
    obj = binding_object(
        namespace, name, spec or {"queue": {"name": f"{name}-q"}, "webhook": {"port": 8080}}
    )
    if status is not None:
        obj["status"] = status
    return obj


def webhook_configuration(name: str, path: str, config: OperatorSettings) -> dict[str, Any]:
    """What the chart installs (caBundle left empty for the operator to fill)."""
    return {
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{path.strip('/')}.carrier.amplify.security",
                "clientConfig": {
                    "service": {
                        "name": config.service_name,
                        "namespace": config.service_namespace,
                        "path": path,
                        "port": 443,
                    }
                },
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


async def create_webhook_configurations(kube: FakeKube, config: OperatorSettings) -> None:
    await kube.create(
        MUTATING_WEBHOOKS,
        webhook_configuration(config.mutating_webhook_configuration, "/mutate-pods", config),
    )
    await kube.create(
        VALIDATING_WEBHOOKS,
        webhook_configuration(
            config.validating_webhook_configuration, "/validate-carrierbindings", config
        ),
    )


def pod_review(
    pod: Mapping[str, Any], *, namespace: str | None, operation: str = "CREATE"
) -> dict[str, Any]:
    """An AdmissionReview v1 request as the API server sends it for a pod."""
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": "3b1e",
            "groups": ["system:serviceaccounts", "system:authenticated"],
        },
        "object": dict(pod),
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if namespace is not None:
        request["namespace"] = namespace
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def binding_review(
    obj: Mapping[str, Any], *, operation: str = "CREATE", old: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {
                "group": "carrier.amplify.security",
                "version": "v1alpha1",
                "kind": "CarrierBinding",
            },
            "resource": {
                "group": "carrier.amplify.security",
                "version": "v1alpha1",
                "resource": "carrierbindings",
            },
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": dict(obj),
            "oldObject": dict(old) if old is not None else None,
            "dryRun": False,
        },
    }


def replicaset_pod(
    binding: str | None,
    *,
    containers: Iterable[Mapping[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod as a Deployment's ReplicaSet creates it: generateName, no name, no namespace."""
    labels = {"app": "worker", "pod-template-hash": "5d9c7b8f6"}
    if binding is not None:
        labels[BINDING_LABEL] = binding
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "worker-5d9c7b8f6-",
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "worker-5d9c7b8f6",
                    "uid": "6f1c2d8e-0000-4000-8000-000000000001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": list(
                containers
                or [
                    {
                        "name": "worker",
                        "image": "example/worker:1",
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent",
                    }
                ]
            ),
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "worker",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            **spec,
        },
    }


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def response(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), self.body
        payload: dict[str, Any] = self.body["response"]
        return payload

    @property
    def allowed(self) -> bool:
        return bool(self.response["allowed"])

    @property
    def message(self) -> str:
        return str((self.response.get("status") or {}).get("message", ""))

    def assert_binding_refused(self, expected: str) -> None:
        """The validating webhook's refusal of a binding: a 422 in a 200 answer, one line
        containing ``expected``."""
        assert self.status == 200
        assert not self.allowed
        assert self.response["status"]["code"] == 422
        assert expected in self.message
        assert "\n" not in self.message

    @property
    def patch(self) -> list[dict[str, Any]]:
        import base64

        raw = self.response.get("patch")
        if raw is None:
            return []
        assert self.response.get("patchType") == "JSONPatch"
        ops: list[dict[str, Any]] = json.loads(base64.b64decode(raw))
        return ops


class OperatorThread:
    """kopf in its own thread and loop, as in its own process.

    kopf cancels every task created after its start when it stops, so it cannot share the test's
    event loop; and the benchmark's load generator must not share the server's loop either.
    """

    def __init__(
        self,
        registry: kopf.OperatorRegistry,
        settings: kopf.OperatorSettings,
        cleanup: Callable[[], Awaitable[None]],
        memo: kopf.Memo | None = None,
    ) -> None:
        self.cleanup = cleanup
        self.memo = memo if memo is not None else kopf.Memo()
        self.registry = registry
        self.settings = settings
        self.stop_flag = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="kopf-injector", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self.loop = asyncio.get_running_loop()
            try:
                await kopf.operator(
                    registry=self.registry,
                    settings=self.settings,
                    clusterwide=True,
                    standalone=True,
                    stop_flag=self.stop_flag,
                    memo=self.memo,
                )
            finally:
                await self.cleanup()

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by stop() and by the start-up wait
            self.error = exc

    def start(self) -> None:
        self.thread.start()

    def call(self, fn: Any) -> None:
        """Run ``fn()`` on the operator's loop (e.g. to poke the server)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def stop(self, timeout: float) -> None:
        self.stop_flag.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"kopf did not stop within {timeout}s")
        if self.error is not None:
            raise RuntimeError(f"kopf failed: {self.error!r}") from self.error


async def _wait(check: Any, operator: OperatorThread, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if operator.error is not None or not operator.thread.is_alive():
            raise RuntimeError(f"kopf stopped while waiting for {what}: {operator.error!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Injector:
    kube: FakeKube
    config: OperatorSettings
    server: InjectorServer
    session: aiohttp.ClientSession
    operator: OperatorThread

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.config.webhook_port}"

    @property
    def ca(self) -> bytes:
        assert self.server.material is not None
        return self.server.material.ca_bundle

    async def post(self, path: str, body: Any, *, raw: bool = False) -> Answer:
        data = body if raw else json.dumps(body).encode()
        async with self.session.post(
            self.url + path,
            data=data,
            headers={"Content-Type": "application/json"},
            server_hostname=self.config.service_host,
        ) as response:
            text = await response.read()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text
            return Answer(response.status, parsed)

    async def mutate(self, pod: Mapping[str, Any], *, namespace: str | None) -> Answer:
        return await self.post(f"/{MUTATE_PODS_ID}", pod_review(pod, namespace=namespace))

    async def validate(self, obj: Mapping[str, Any], **kwargs: Any) -> Answer:
        return await self.post(f"/{VALIDATE_BINDINGS_ID}", binding_review(obj, **kwargs))


def client_context(ca: bytes) -> ssl.SSLContext:
    """Verify the server exactly as the API server does: against the caBundle, by DNS name."""
    return ssl.create_default_context(cadata=ca.decode("ascii"))


@contextlib.asynccontextmanager
async def running_injector(
    *,
    bindings: Iterable[Mapping[str, Any]] = (),
    secrets: Iterable[Mapping[str, Any]] = (),
    nodes: Iterable[Mapping[str, Any]] | None = None,
    prepare: Callable[[FakeKube], object] | None = None,
    webhook_configurations: bool = True,
    timeout: float = 20.0,
    **overrides: Any,
) -> AsyncIterator[Injector]:
    """kmock + kopf (our admission handlers only) + the injector's HTTPS server on loopback."""
    async with fake_kube(NAMESPACES) as kube:
        config = OperatorSettings(
            webhook_port=free_port(), service_namespace="carrier-system", **overrides
        )
        if webhook_configurations:
            await create_webhook_configurations(kube, config)
        for obj in secrets:
            await kube.create(SECRETS, obj)
        bindings = list(bindings)
        for obj in bindings:
            await kube.create(BINDINGS, obj)
        for node in DEFAULT_NODES if nodes is None else nodes:
            await kube.create(NODES, node)
        if prepare is not None:  # e.g. a reaction of the fake API, before the injector starts
            prepare(kube)

        registry = kopf.OperatorRegistry()
        admission.register(registry)

        @kopf.on.login(registry=registry)
        def _login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=kube.url, scheme="Bearer", token=kube.operator_token)

        settings = kopf.OperatorSettings()
        settings.posting.enabled = False
        settings.networking.connect_timeout = 5
        api = KubeAPI(kube.url, token=kube.operator_token)
        memo = kopf.Memo()
        server = admission.configure(settings, config, memo, api=api, addr="127.0.0.1")
        operator = OperatorThread(registry, settings, api.close, memo)
        operator.start()
        try:
            await _wait(lambda: server.listening.is_set(), operator, timeout, "the webhook server")
            injector = admission.injector_of(memo)
            assert injector is not None
            if bindings:
                await _wait(lambda: injector.lookup.synced, operator, timeout, "kopf's index")
            assert server.material is not None
            connector = aiohttp.TCPConnector(ssl=client_context(server.material.ca_bundle))
            async with aiohttp.ClientSession(connector=connector) as session:
                yield Injector(
                    kube=kube, config=config, server=server, session=session, operator=operator
                )
        finally:
            await asyncio.to_thread(operator.stop, timeout)
