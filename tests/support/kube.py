"""A fake Kubernetes API (kmock over real HTTP on loopback) and the real operator running against it.

Usage (inside an async test)::

    async with fake_kube() as kube, running_operator(OperatorSettings(...)):
        await kube.create(BINDINGS, binding("ns", "b1", spec))
        await eventually(lambda: kube.status(BINDINGS, "ns", "b1").get("boundPods") == 0, 10, "x")

Facts about kmock 0.8 this harness works around (see the toolchain notes):
- every resource kopf or the operator touches is declared here, ``v1/namespaces`` included,
  or kopf waits silently in discovery;
- objects get ``metadata.resourceVersion``/``uid`` on creation (kmock never bumps the version,
  so a handler may run twice: test idempotency, not call counts);
- objects are created/patched over HTTP so that watch streams see the change;
- the kubernetes client reads ``$KUBECONFIG`` once at import: this module points it (and the
  client's module default) at one kubeconfig file per process, rewritten by each ``fake_kube``.
  One fake API at a time per process.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import yaml

KUBECONFIG = Path(tempfile.gettempdir()) / f"carrier-tests-kubeconfig-{os.getpid()}.yaml"
os.environ["KUBECONFIG"] = str(KUBECONFIG)
if "kubernetes.config.kube_config" in sys.modules:  # imported before us: patch its default too
    _kube_config: Any = sys.modules["kubernetes.config.kube_config"]  # untyped library module
    _kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(KUBECONFIG)

from carrier_operator import binding as _binding  # noqa: E402

# Resource keys as kmock spells them ("group/version/plural"; "v1/plural" for the core group).
NAMESPACES = "v1/namespaces"
PODS = "v1/pods"
EVENTS = "v1/events"
SECRETS = "v1/secrets"
CONFIGMAPS = "v1/configmaps"
SERVICES = "v1/services"
DEPLOYMENTS = "apps/v1/deployments"
STATEFULSETS = "apps/v1/statefulsets"
BINDINGS = f"{_binding.GROUP}/{_binding.VERSION}/{_binding.PLURAL}"
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
MUTATING_WEBHOOKS = "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
VALIDATING_WEBHOOKS = "admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
LEASES = "coordination.k8s.io/v1/leases"
NODES = "v1/nodes"

_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}

RESOURCES: dict[str, kmock.ResourceInfo] = {
    NAMESPACES: kmock.ResourceInfo(kind="Namespace", singular="namespace", namespaced=False),
    PODS: kmock.ResourceInfo(kind="Pod", singular="pod", namespaced=True, subresources={"status"}),
    EVENTS: kmock.ResourceInfo(kind="Event", singular="event", namespaced=True),
    SECRETS: kmock.ResourceInfo(kind="Secret", singular="secret", namespaced=True),
    CONFIGMAPS: kmock.ResourceInfo(kind="ConfigMap", singular="configmap", namespaced=True),
    SERVICES: kmock.ResourceInfo(kind="Service", singular="service", namespaced=True),
    DEPLOYMENTS: kmock.ResourceInfo(
        kind="Deployment", singular="deployment", namespaced=True, subresources={"status"}
    ),
    STATEFULSETS: kmock.ResourceInfo(
        kind="StatefulSet", singular="statefulset", namespaced=True, subresources={"status"}
    ),
    BINDINGS: kmock.ResourceInfo(
        kind=_binding.KIND,
        singular="carrierbinding",
        namespaced=True,
        shortnames={"cb"},
        subresources={"status"},
    ),
    CRDS: kmock.ResourceInfo(
        kind="CustomResourceDefinition", singular="customresourcedefinition", namespaced=False
    ),
    MUTATING_WEBHOOKS: kmock.ResourceInfo(
        kind="MutatingWebhookConfiguration",
        singular="mutatingwebhookconfiguration",
        namespaced=False,
    ),
    VALIDATING_WEBHOOKS: kmock.ResourceInfo(
        kind="ValidatingWebhookConfiguration",
        singular="validatingwebhookconfiguration",
        namespaced=False,
    ),
    LEASES: kmock.ResourceInfo(kind="Lease", singular="lease", namespaced=True),
    NODES: kmock.ResourceInfo(kind="Node", singular="node", namespaced=False),
}
for _info in RESOURCES.values():
    _info.verbs = set(_VERBS)


class _Emulator(kmock.KubernetesEmulator):
    """kmock plus what the API server does on create: ``generateName`` (kopf names its Events
    that way) and a ``resourceVersion``/``uid`` for objects the code under test creates; and, on
    every write, a new ``resourceVersion`` with 409 Conflict for a stale one (:meth:`_versioned`)."""

    _revision: int = 1000
    _write_lock: asyncio.Lock | None = None
    # Called with each create/patch before it is applied (tests stage faults at exact points:
    # e.g. SIGKILL a process in the middle of its rollout); raising refuses the write.
    write_hooks: builtins.list[Callable[[kmock.Request], None]] = []

    async def _versioned(self, request: kmock.Request) -> Any:
        """What the API server's optimistic concurrency does, which kmock 0.8 does not: every
        create/patch gets the next resourceVersion, and a patch whose body carries a
        ``metadata.resourceVersion`` other than the stored one is refused with 409 Conflict
        (a precondition, as for a real merge patch or update). Writes are serialised so that
        the check and the write are one step."""
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:
            for hook in list(self.write_hooks):
                hook(request)
            data = request.data
            meta = data.get("metadata") if isinstance(data, dict) else None
            if request.action == kmock.action.UPDATE and request.name is not None:
                stored = None
                if request.resource is not None:
                    with contextlib.suppress(KeyError):
                        stored = self.objects[request.resource, request.namespace, request.name]
                if stored is not None and not stored.deleted:
                    current = (stored.raw.get("metadata") or {}).get("resourceVersion")
                    sent = meta.get("resourceVersion") if isinstance(meta, dict) else None
                    if sent is not None and str(sent) != str(current):
                        raise kmock.KubernetesError(
                            status=409,
                            reason="Conflict",
                            message=f"Operation cannot be fulfilled on {request.name}: the "
                            "object has been modified; please apply your changes to the "
                            "latest version and try again",
                        )
            if isinstance(meta, dict) and request.action in {
                kmock.action.CREATE,
                kmock.action.UPDATE,
            }:
                self._revision += 1
                meta["resourceVersion"] = str(self._revision)
            return await super()._handle(request)

    async def _handle(self, request: kmock.Request) -> Any:
        if request.action in {kmock.action.CREATE, kmock.action.UPDATE} and isinstance(
            request.data, dict
        ):
            request.data.setdefault("metadata", {})
        data = request.data
        if request.action == kmock.action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if isinstance(meta, dict):
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
                meta.setdefault("resourceVersion", "1")
                meta.setdefault("uid", str(uuid.uuid4()))
        if request.action in {kmock.action.CREATE, kmock.action.UPDATE}:
            return await self._versioned(request)
        return await super()._handle(request)


def _path(resource: str, namespace: str | None, name: str | None = None) -> str:
    group_version, plural = resource.rsplit("/", 1)
    base = f"/api/{group_version}" if group_version == "v1" else f"/apis/{group_version}"
    if namespace is not None:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return f"{base}/{name}" if name else base


def _api_version(resource: str) -> str:
    return resource.rsplit("/", 1)[0]


@dataclass
class FakeKube:
    """A running kmock Kubernetes emulator plus a kubeconfig pointing at it."""

    mock: _Emulator
    kubeconfig: Path = KUBECONFIG
    _counter: int = field(default=0)

    @property
    def url(self) -> str:
        return str(self.mock.url).rstrip("/")

    # --- writing (over HTTP, so kopf's watches see it) ----------------------------------------
    async def create(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST an object; fills apiVersion, resourceVersion, uid, creationTimestamp, generation."""
        body: dict[str, Any] = dict(obj)
        meta = dict(body.get("metadata") or {})
        self._counter += 1
        meta.setdefault("resourceVersion", str(self._counter))
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta.setdefault("generation", 1)
        body["metadata"] = meta
        body.setdefault("apiVersion", _api_version(resource))
        body.setdefault("kind", RESOURCES[resource].kind)
        namespace = meta.get("namespace") if RESOURCES[resource].namespaced else None
        async with self.mock.post(_path(resource, namespace), json=body) as response:
            payload: dict[str, Any] = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"create {resource} failed: {response.status} {payload}")
            return payload

    async def patch(
        self, resource: str, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch an object (a spec change bumps ``metadata.generation`` like the API does)."""
        body = dict(patch)
        if "spec" in body:
            current = self.get(resource, namespace, name) or {}
            generation = int((current.get("metadata") or {}).get("generation") or 1) + 1
            body["metadata"] = {**dict(body.get("metadata") or {}), "generation": generation}
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.mock.patch(
            _path(resource, namespace, name), json=body, headers=headers
        ) as response:
            payload: dict[str, Any] = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"patch {resource} failed: {response.status} {payload}")
            return payload

    async def delete(self, resource: str, namespace: str | None, name: str) -> None:
        async with self.mock.delete(_path(resource, namespace, name)) as response:
            if response.status >= 400:
                raise RuntimeError(f"delete {resource} failed: {response.status}")

    def create_namespace(self, name: str) -> None:
        """Stored directly: kmock 0.8 cannot route ``/api/v1/namespaces`` (it reads "namespaces"
        as the namespace prefix). kopf lists namespaces only for glob patterns."""
        meta = {"name": name, "resourceVersion": "1", "uid": str(uuid.uuid4())}
        self.mock.objects[NAMESPACES, None, name] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": meta,
        }

    # --- reading (from kmock's memory: no request, no side effect) ----------------------------
    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (resource, namespace, name)
        try:
            obj = self.mock.objects[key]
        except KeyError:
            return None
        if obj.deleted:
            return None
        raw: dict[str, Any] = obj.raw
        return raw

    def status(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        status: dict[str, Any] = (self.get(resource, namespace, name) or {}).get("status") or {}
        return status

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        wanted = kmock.resource(resource)
        found: list[dict[str, Any]] = []
        for (res, ns, _name), obj in self.mock.objects.items():
            if res == wanted and not obj.deleted and (namespace is None or ns == namespace):
                found.append(obj.raw)
        return found

    def events(
        self, namespace: str | None = None, name: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Events posted (by kopf's poster), optionally only those about one object."""
        events = self.list(EVENTS, namespace)
        if name is not None:
            events = [e for e in events if (e.get("involvedObject") or {}).get("name") == name]
        return events

    def requests(
        self, method: str | None = None, path_part: str = ""
    ) -> builtins.list[kmock.Request]:
        """Requests the API has served so far (kmock 0.8 has no ``.requests``: iterate it)."""
        found: builtins.list[kmock.Request] = []
        for request in list(self.mock):
            if method is not None and str(request.method.value).upper() != method.upper():
                continue
            if path_part and path_part not in request.url.path:
                continue
            found.append(request)
        return found


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The condition of a given type in a status (empty dict if absent)."""
    for item in status.get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def binding_object(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{_binding.GROUP}/{_binding.VERSION}",
        "kind": _binding.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


def pod_object(
    namespace: str, name: str, binding_name: str | None, phase: str = "Running"
) -> dict[str, Any]:
    labels = {"app": name}
    if binding_name is not None:
        labels[_binding.BINDING_LABEL] = binding_name
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
        "status": {"phase": phase},
    }


def node_object(name: str, kubelet_version: str) -> dict[str, Any]:
    """A Node as the kubelet registers it (what the injector's node watch reads)."""
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "nodeInfo": {
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "containerRuntimeVersion": "containerd://1.7.22",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def workload_object(namespace: str, name: str, binding_name: str | None) -> dict[str, Any]:
    """A Deployment/StatefulSet body whose pod template opts into ``binding_name``."""
    labels = {"app": name}
    if binding_name is not None:
        labels[_binding.BINDING_LABEL] = binding_name
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
        },
    }


def _write_kubeconfig(path: Path, server: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "kmock", "user": {"token": "kmock-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))


@contextlib.asynccontextmanager
async def fake_kube(namespaces: tuple[str, ...] = ("default",)) -> AsyncIterator[FakeKube]:
    """Start kmock on loopback with every resource declared; write the kubeconfig for it."""
    mock = _Emulator()
    mock.write_hooks = []
    for key, info in RESOURCES.items():
        mock.resources[key] = info
    async with mock, kmock.Server(mock):
        kube = FakeKube(mock=mock)
        _write_kubeconfig(kube.kubeconfig, kube.url)
        for namespace in namespaces:
            kube.create_namespace(namespace)
        yield kube


@dataclass
class OperatorHandle:
    """The operator running in its own thread and event loop, as in its own process."""

    thread: threading.Thread
    stop: threading.Event
    ready: threading.Event
    error: list[BaseException] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_operator(
    config: Any = None, *, ready_timeout: float = 30, stop_timeout: float = 30
) -> AsyncIterator[OperatorHandle]:
    """Run ``carrier_operator.__main__.run(config)`` (kopf + our handlers) until the block exits.

    ``config`` is an ``OperatorSettings``; None builds one from the environment.
    Raises if the operator does not become ready, or fails, or does not stop in time.
    """
    from carrier_operator.__main__ import run
    from carrier_operator.config import OperatorSettings

    settings = config if config is not None else OperatorSettings()
    stop = threading.Event()
    ready = threading.Event()
    errors: list[BaseException] = []

    def _main() -> None:
        try:
            asyncio.run(run(settings, stop_flag=stop, ready_flag=ready))
        except BaseException as exc:  # reported to the test at exit
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=_main, name="carrier-operator", daemon=True)
    handle = OperatorHandle(thread=thread, stop=stop, ready=ready, error=errors)
    thread.start()
    try:
        if not await asyncio.to_thread(ready.wait, ready_timeout):
            raise TimeoutError(f"operator not ready within {ready_timeout}s")
        if errors:
            raise RuntimeError(f"operator failed at start-up: {errors[0]!r}") from errors[0]
        yield handle
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, stop_timeout)
        if thread.is_alive():
            raise TimeoutError(f"operator did not stop within {stop_timeout}s")
    if errors:
        raise RuntimeError(f"operator failed: {errors[0]!r}") from errors[0]
