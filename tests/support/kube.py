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
- objects are created/patched over HTTP so that watch streams see the change (``load`` stores
  thousands directly, for objects that exist before the code under test starts);
- unlike kmock, it is strict as kube-apiserver is: every request needs a known bearer token or
  a client certificate from the test CA (else 401), the operator's identity gets only the
  chart's rendered RBAC (else 403), lists and watches honour ``labelSelector``/``fieldSelector``
  and lists ``limit``/``continue``, and ``served()`` is the request log (tests/support/
  kube_access.py, kube_select.py);
- the kubernetes client reads ``$KUBECONFIG`` once at import: this module points it (and the
  client's module default) at one kubeconfig file per process, rewritten by each ``fake_kube``.
  One fake API at a time per process.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import json
import os
import ssl
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.test_utils
import aiohttp.web
import kmock
import yaml

KUBECONFIG = Path(tempfile.gettempdir()) / f"carrier-tests-kubeconfig-{os.getpid()}.yaml"
os.environ["KUBECONFIG"] = str(KUBECONFIG)
if "kubernetes.config.kube_config" in sys.modules:  # imported before us: patch its default too
    _kube_config: Any = sys.modules["kubernetes.config.kube_config"]  # untyped library module
    _kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(KUBECONFIG)

from carrier_operator import binding as _binding  # noqa: E402
from tests.support import kube_select  # noqa: E402
from tests.support.kube_access import (  # noqa: E402
    ADMIN_TOKEN,
    OPERATOR,
    OPERATOR_TOKEN,
    Access,
    Attributes,
    Identity,
    Refused,
    Served,
    chart_rbac,
    peer_certificate,
)
from tests.support.kube_tls import TestCA  # noqa: E402

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
HPAS = "autoscaling/v2/horizontalpodautoscalers"
SCALED_OBJECTS = "keda.sh/v1alpha1/scaledobjects"
TRIGGER_AUTHENTICATIONS = "keda.sh/v1alpha1/triggerauthentications"

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
    HPAS: kmock.ResourceInfo(
        kind="HorizontalPodAutoscaler",
        singular="horizontalpodautoscaler",
        namespaced=True,
        shortnames={"hpa"},
        subresources={"status"},
    ),
}
# KEDA's CRDs: served only by ``fake_kube(keda=True)``, so without it discovery of keda.sh and
# every keda.sh request answer 404, as on a cluster without KEDA.
KEDA_RESOURCES: dict[str, kmock.ResourceInfo] = {
    SCALED_OBJECTS: kmock.ResourceInfo(
        kind="ScaledObject",
        singular="scaledobject",
        namespaced=True,
        shortnames={"so"},
        subresources={"status"},
    ),
    TRIGGER_AUTHENTICATIONS: kmock.ResourceInfo(
        kind="TriggerAuthentication",
        singular="triggerauthentication",
        namespaced=True,
        shortnames={"ta", "triggerauth"},
    ),
}
for _info in [*RESOURCES.values(), *KEDA_RESOURCES.values()]:
    _info.verbs = set(_VERBS)


def _info_of(resource: str) -> kmock.ResourceInfo:
    return RESOURCES[resource] if resource in RESOURCES else KEDA_RESOURCES[resource]


class _Emulator(kmock.KubernetesEmulator):
    """kmock plus what kube-apiserver does around it: authentication and the chart's RBAC
    (``access``), label/field selectors and ``limit``/``continue`` on lists and watches, a
    request log, and on create ``generateName`` (kopf names its Events that way) and a
    ``resourceVersion``/``uid`` for objects the code under test creates; and, on every write, a
    new ``resourceVersion`` with 409 Conflict for a stale one (:meth:`_versioned`)."""

    access: Access | None = None  # set by fake_kube; None serves everyone (kmock's default)
    baseline_payloads: int | None = None  # kmock's own reactions: more means a test added some
    compacted: dict[str, int] | None = None  # resource -> versions older than this are gone

    _revision: int = 1000
    _write_lock: asyncio.Lock | None = None
    # Called with each create/patch before it is applied (tests stage faults at exact points:
    # e.g. SIGKILL a process in the middle of its rollout); raising refuses the write.
    write_hooks: builtins.list[Callable[[kmock.Request], None]] = []

    async def _versioned(
        self, request: kmock.Request, serve: Callable[[kmock.Request], Any]
    ) -> Any:
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
            if isinstance(data, dict) and request.action in {
                kmock.action.CREATE,
                kmock.action.UPDATE,
            }:
                # Every write moves the version, a patch without metadata (a status merge
                # patch) too, as on a real API server: a reader's version goes stale with it.
                if not isinstance(meta, dict):
                    meta = data["metadata"] = {}
                self._revision += 1
                meta["resourceVersion"] = str(self._revision)
            return await serve(request)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.path.rstrip("/") == "/api/v1/namespaces":
            return await self._serve_namespaces(raw_request)
        return await super().__call__(raw_request)

    async def _serve_namespaces(
        self, raw_request: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        """List/watch ``/api/v1/namespaces``, which kmock 0.8 cannot route (it reads
        "namespaces" as the namespace prefix); kopf asks for it when it serves a namespace
        list. The watch shows the namespaces that exist, then stays open until timeoutSeconds."""
        await raw_request.read()
        query = dict(raw_request.query)
        attributes = Attributes.of(raw_request.method, raw_request.path, query)
        entry = Served(raw_request.method, raw_request.path, query, attributes.verb)
        if self.access is not None:
            self.access.log.append(entry)
            try:
                identity = self.access.authenticate(
                    dict(raw_request.headers), peer_certificate(raw_request.transport)
                )
                entry.user = identity.user
                self.access.authorize(identity, attributes)
            except Refused as exc:
                entry.status = exc.code
                status = {"kind": "Status", "apiVersion": "v1", "code": exc.code}
                status |= {"status": "Failure", "reason": exc.reason, "message": exc.message}
                return aiohttp.web.json_response(status, status=exc.code)
        wanted = kmock.resource(NAMESPACES)
        try:
            match = kube_select.selector_match(query, "namespaces")
            items = [
                obj.raw
                for (resource, _ns, _name), obj in self.objects.items()
                if resource == wanted and not obj.deleted and match(obj.raw)
            ]
            page = kube_select.paginate(items, query, "1")
        except kube_select.BadRequest as exc:
            entry.status = 400
            status = {"kind": "Status", "apiVersion": "v1", "code": 400, "reason": "BadRequest"}
            return aiohttp.web.json_response({**status, "message": str(exc)}, status=400)
        entry.status = 200
        if attributes.verb != "watch":
            meta: dict[str, Any] = {"resourceVersion": page.resource_version}
            if page.continue_token:
                meta["continue"] = page.continue_token
            body = {"kind": "NamespaceList", "apiVersion": "v1", "metadata": meta}
            return aiohttp.web.json_response({**body, "items": page.items})
        response = aiohttp.web.StreamResponse()
        await response.prepare(raw_request)
        for item in items:
            await response.write(json.dumps({"type": "ADDED", "object": item}).encode() + b"\n")
        timeout = query.get("timeoutSeconds", "")
        await asyncio.sleep(min(int(timeout) if timeout.isdigit() else 1800, 1800))
        return response

    async def _handle(self, request: kmock.Request) -> Any:
        entry = self._log(request)
        try:
            self._authenticate(request, entry)
            self._check_query(request)
            self._fill_create(request)
            if request.action == kmock.action.WATCH:
                entry.status = 200  # the stream starts now and lasts until the client leaves
            serve = self._serve_fast if self._fast(request) else super()._handle
            if request.action in {kmock.action.CREATE, kmock.action.UPDATE}:
                response = await self._versioned(request, serve)
            else:
                response = await serve(request)
            entry.status = response.status
            return response
        except kmock.KubernetesError as exc:
            entry.status = exc.status
            raise
        except Exception:
            entry.status = 500
            raise

    def _authenticate(self, request: kmock.Request, entry: Served) -> None:
        """401 without known credentials, 403 for what the identity's RBAC does not grant."""
        if self.access is None:
            return
        raw = request._raw_request
        peercert = peer_certificate(raw.transport if raw is not None else None)
        attributes = Attributes.of(str(request.method.value), request.url.path, request.params)
        try:
            identity = self.access.authenticate(request.headers, peercert)
            entry.user = identity.user
            self.access.authorize(identity, attributes)
        except Refused as exc:
            raise kmock.KubernetesError(
                status=exc.code, reason=exc.reason, message=exc.message, details={}
            ) from None

    def _check_query(self, request: kmock.Request) -> None:
        """A malformed selector or continue token is a 400, as upstream; a watch from a
        compacted resourceVersion is a 410."""
        if request.action not in {kmock.action.LIST, kmock.action.WATCH}:
            return
        since = str(request.params.get("resourceVersion") or "")
        oldest = (self.compacted or {}).get(str(request.resource), 0)
        if request.action == kmock.action.WATCH and since.isdigit() and int(since) < oldest:
            raise kmock.KubernetesError(
                status=410,
                reason="Expired",
                message=f"too old resource version: {since} ({oldest})",
                details={},
            )
        try:
            self._matcher(request)
            kube_select.paginate([], request.params, "0")
        except kube_select.BadRequest as exc:
            raise kmock.KubernetesError(
                status=400, reason="BadRequest", message=str(exc), details={}
            ) from None

    def _fill_create(self, request: kmock.Request) -> None:
        data = request.data
        if request.action == kmock.action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if isinstance(meta, dict):
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
                meta.setdefault("resourceVersion", "1")
                meta.setdefault("uid", str(uuid.uuid4()))

    def _log(self, request: kmock.Request) -> Served:
        """The request's entry in the log, completed (user, status) as it is served."""
        verb = Attributes.of(str(request.method.value), request.url.path, request.params).verb
        entry = Served(
            method=str(request.method.value).upper(),
            path=request.url.path,
            query=dict(request.params),
            verb=verb,
        )
        if self.access is not None:
            self.access.log.append(entry)
        return entry

    @staticmethod
    def _matcher(request: kmock.Request) -> kube_select.Match:
        plural = request.resource.plural if request.resource is not None else ""
        return kube_select.selector_match(request.params, str(plural or ""))

    # --- the fast path ---------------------------------------------------------------------------
    # kmock matches every request against its reaction DSL before it reaches the emulator's
    # fallbacks: ~35 ms a request on a busy 2-core machine, minutes for a thousand bindings.
    # Without reactions added by a test there is nothing to match, so the same state changes
    # and answers are served directly (kmock's KubernetesEmulator._handle, step for step).
    _FAST = frozenset(
        {kmock.action.LIST, kmock.action.FETCH, kmock.action.CREATE, kmock.action.UPDATE}
        | {kmock.action.DELETE}
    )

    def _fast(self, request: kmock.Request) -> bool:
        if request.resource is None or request.action not in self._FAST:
            return False
        if not request.resource.plural or request.subresource not in {None, "status"}:
            return False  # discovery (/apis/group/version) and other subresources: kmock's
        named = request.action not in {kmock.action.CREATE, kmock.action.LIST}
        if named and request.name is None:
            return False
        return self.baseline_payloads is not None and len(self._payloads) == self.baseline_payloads

    async def _serve_fast(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        resource = request.resource
        assert resource is not None  # _fast() checked
        bus = self._buses[resource]
        collect: Any = None
        async with self._lock:
            key: Any = None
            if request.action == kmock.action.CREATE:
                meta = (request.data or {}).get("metadata") or {}
                key = (resource, request.namespace or meta.get("namespace"), meta.get("name"))
                if key not in self._objects:
                    self._objects[key] = request.data
                elif not self._objects[key].deleted:
                    raise kmock.KubernetesError(
                        status=409, reason="AlreadyExists", message="already exists", details={}
                    )
                else:
                    self._objects[key].create(request.data)
                await bus.put({"type": "ADDED", "object": self._objects[key].last.raw})
            elif request.action == kmock.action.DELETE:
                key = (resource, request.namespace, request.name)
                if key not in self._objects or self._objects[key].deleted:
                    raise kmock.KubernetesObjectNotFoundError()
                meta = self._objects[key].get("metadata", {})
                if meta.get("deletionTimestamp"):
                    pass  # already being deleted
                elif meta.get("finalizers", []):
                    now = dt.datetime.now(tz=dt.UTC).isoformat()
                    self._objects[key].patch({"metadata": {"deletionTimestamp": now}})
                    await bus.put({"type": "MODIFIED", "object": self._objects[key].raw})
                else:
                    self._objects[key].delete()
                    await bus.put({"type": "DELETED", "object": self._objects[key].last.raw})
            elif request.action == kmock.action.UPDATE:
                key = (resource, request.namespace, request.name)
                if key not in self._objects or self._objects[key].deleted:
                    raise kmock.KubernetesObjectNotFoundError()
                self._objects[key].patch(request.data)
                await bus.put({"type": "MODIFIED", "object": self._objects[key].raw})
            if key is not None and key in self._objects and not self._objects[key].deleted:
                meta = self._objects[key].get("metadata", {})
                if meta.get("deletionTimestamp") and not meta.get("finalizers", []):
                    collect = key
        serve = {
            kmock.action.LIST: self._serve_list,
            kmock.action.FETCH: self._serve_fetch,
            kmock.action.CREATE: self._serve_create,
            kmock.action.UPDATE: self._serve_update,
            kmock.action.DELETE: self._serve_delete,
        }[kmock.action(request.action)]
        response = aiohttp.web.json_response(await serve(request))
        if collect is not None:  # finalizers released: gone after the answer, as in kmock
            async with self._lock:
                raw = self._objects[collect].raw
                self._objects[collect].delete()
                await bus.put({"type": "DELETED", "object": raw})
        return response

    # kmock finds an object by scanning every stored object (48 ms a request with 10 000 pods);
    # kube-apiserver reads one key. These serve the same answers by key, so a cluster with
    # thousands of objects stays fast.
    def _get_resources(self) -> builtins.list[kmock.resource]:
        return kmock.KubernetesScaffold._get_resources(self)  # every resource is declared

    def _stored(self, request: kmock.Request, namespace: str | None = None) -> Any:
        ns = namespace if namespace is not None else request.namespace
        key: Any = (request.resource, ns, request.name)
        obj = self.objects._objects.get(key)
        if obj is None or obj.deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return obj

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        return self._stored(request).raw

    async def _serve_update(self, request: kmock.Request) -> Any:
        return self._stored(request).last.raw

    async def _serve_delete(self, request: kmock.Request) -> Any:
        key: Any = (request.resource, request.namespace, request.name)
        obj = self.objects._objects.get(key)
        if obj is None:
            raise kmock.KubernetesObjectNotFoundError()
        return obj.last.raw

    async def _serve_create(self, request: kmock.Request) -> Any:
        meta = (request.data or {}).get("metadata") or {}
        key: Any = (request.resource, request.namespace or meta.get("namespace"), meta.get("name"))
        obj = self.objects._objects.get(key)
        if obj is None:
            raise kmock.KubernetesObjectNotFoundError()
        return obj.raw

    async def _serve_list(self, request: kmock.Request) -> Any:
        if request.resource not in self._get_resources():
            raise kmock.KubernetesResourceNotFoundError()
        match = self._matcher(request)
        items, newest = [], 0
        for (resource, namespace, _name), obj in self.objects.items():
            if resource != request.resource or obj.deleted:
                continue
            raw = obj.raw
            version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
            newest = max(newest, int(version) if version.isdigit() else 0)
            if (request.namespace is None or namespace == request.namespace) and match(raw):
                items.append(raw)
        page = kube_select.paginate(items, request.params, str(newest))
        meta: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.continue_token:
            meta["continue"] = page.continue_token
            meta["remainingItemCount"] = page.remaining
        return {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page.items}

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        """kmock's stream, filtered by the selectors: an object that stops matching is seen as
        DELETED and one that starts matching as ADDED, as the watch cache does."""
        match = self._matcher(request)
        inside: set[tuple[str, str]] = set()
        async for event in super()._serve_watch(request):
            if not isinstance(event, dict):
                yield event
                continue
            if event.get("type") == "ERROR":  # expire_watches(): the stream ends here
                yield event
                return
            obj = event.get("object") or {}
            meta = obj.get("metadata") or {}
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            if match(obj):
                if event.get("type") == "DELETED":
                    inside.discard(key)
                elif key not in inside:
                    inside.add(key)
                    event = {**event, "type": "ADDED"}
                yield event
            elif key in inside:
                inside.discard(key)
                yield {"type": "DELETED", "object": obj}


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
    """A running kmock Kubernetes emulator plus a kubeconfig pointing at it.

    The kubeconfig authenticates as the chart's operator service account (``OPERATOR_TOKEN``),
    whose requests the chart's RBAC limits; the helpers below arrange objects as an admin.
    """

    mock: _Emulator
    access: Access
    ca: TestCA | None = None
    kubeconfig: Path = KUBECONFIG
    _counter: int = field(default=0)

    @property
    def url(self) -> str:
        return str(self.mock.url).rstrip("/")

    @property
    def operator_token(self) -> str:
        return OPERATOR_TOKEN

    # --- identities ---------------------------------------------------------------------------
    def add_token(self, token: str, identity: Identity = OPERATOR) -> None:
        """Accept ``token`` as ``identity`` from now on (an exec plugin's, a projected SA's)."""
        self.access.tokens[token] = identity

    def issue_client_cert(self, identity: Identity = OPERATOR) -> tuple[Path, Path]:
        """A client certificate (and key) for ``identity``, signed by the server's CA."""
        if self.ca is None:
            raise RuntimeError("client certificates need fake_kube(tls=True)")
        stem = f"client-{uuid.uuid4().hex[:8]}"
        return self.ca.issue(stem, identity.user, organizations=identity.groups, server=False)

    def write_kubeconfig(self, user: Mapping[str, Any] | None = None) -> Path:
        """Point the kubeconfig at this server with ``user`` credentials (default: the
        operator's token); the kubernetes client and kopf read it at each login."""
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca is not None:
            cluster["certificate-authority"] = str(self.ca.ca_file)
        _write_kubeconfig(self.kubeconfig, cluster, dict(user or {"token": OPERATOR_TOKEN}))
        return self.kubeconfig

    # --- the request log ----------------------------------------------------------------------
    def served(
        self, method: str | None = None, path_part: str = "", *, user: str | None = None
    ) -> builtins.list[Served]:
        """Requests served so far (method, path, query, user, status), optionally filtered."""
        return [
            entry
            for entry in list(self.access.log)
            if (method is None or entry.method == method.upper())
            and path_part in entry.path
            and (user is None or entry.user == user)
        ]

    async def expire_watches(self, resource: str) -> None:
        """What an etcd compaction does to watchers: open watches of ``resource`` end with an
        ERROR 410 event, and a watch from an older resourceVersion is answered 410."""
        newest = 0
        for (res, _ns, _name), obj in self.mock.objects.items():
            if res == kmock.resource(resource):
                version = str((obj.raw.get("metadata") or {}).get("resourceVersion") or "0")
                newest = max(newest, int(version) if version.isdigit() else 0)
        self._counter = max(self._counter, newest) + 1
        compacted = self.mock.compacted = dict(self.mock.compacted or {})
        compacted[str(kmock.resource(resource))] = self._counter
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410}
        status |= {"reason": "Expired", "message": "too old resource version"}
        namespaces = {ns for (res, ns, _n) in self.mock.objects if res == kmock.resource(resource)}
        for namespace in sorted(namespaces, key=str):  # kmock routes events by namespace
            body = {**status, "metadata": {"namespace": namespace}}
            await self.mock._buses[kmock.resource(resource)].put({"type": "ERROR", "object": body})

    # --- bulk loading (no HTTP, no watch events: before the code under test starts) ----------
    def load(self, resource: str, objects: Iterable[Mapping[str, Any]]) -> int:
        """Store objects directly, as ``create`` fills them: thousands in well under a second.
        Watches opened later see them; later changes go through ``create``/``patch``."""
        count = 0
        info = _info_of(resource)
        for obj in objects:
            body = self._filled(resource, obj)
            meta = body["metadata"]
            namespace = meta.get("namespace") if info.namespaced else None
            self.mock.objects[kmock.resource(resource), namespace, meta["name"]] = body
            count += 1
        return count

    def _filled(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = dict(obj)
        meta = dict(body.get("metadata") or {})
        self._counter += 1
        meta.setdefault("resourceVersion", str(self._counter))
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta.setdefault("generation", 1)
        body["metadata"] = meta
        body.setdefault("apiVersion", _api_version(resource))
        body.setdefault("kind", _info_of(resource).kind)
        return body

    # --- writing (over HTTP, so kopf's watches see it) ----------------------------------------
    async def create(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST an object; fills apiVersion, resourceVersion, uid, creationTimestamp, generation."""
        body = self._filled(resource, obj)
        meta = body["metadata"]
        namespace = meta.get("namespace") if _info_of(resource).namespaced else None
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


def _write_kubeconfig(path: Path, cluster: Mapping[str, Any], user: Mapping[str, Any]) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": dict(cluster)}],
        "users": [{"name": "kmock", "user": dict(user)}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))


def _tls_server(context: ssl.SSLContext) -> type[aiohttp.test_utils.RawTestServer]:
    """kmock's aiohttp test server, serving HTTPS (kmock starts it without ``ssl=``)."""

    class _TLSServer(aiohttp.test_utils.RawTestServer):
        async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
            await super().start_server(loop=loop, ssl=context, **kwargs)

    return _TLSServer


def _admin_client(context: ssl.SSLContext | None) -> Any:
    """The fixture's own client: an admin, as a test arranging a cluster would be."""

    def make(url: Any) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=context if context is not None else False)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return aiohttp.ClientSession(url, connector=connector, headers=headers)

    return make


@contextlib.asynccontextmanager
async def fake_kube(
    namespaces: tuple[str, ...] = ("default",),
    *,
    tls: bool = False,
    chart_values: Mapping[str, Any] | None = None,
    keda: bool = False,
) -> AsyncIterator[FakeKube]:
    """Start kmock on loopback with every resource declared; write the kubeconfig for it.

    Every request must authenticate; the operator's identity gets exactly the RBAC the chart
    renders for ``chart_values`` (match them to the operator's settings: ``namespaces``,
    ``replicaCount``). ``tls`` serves HTTPS from a test CA, which client certificates need.
    ``keda`` serves KEDA's CRDs (keda.sh scaledobjects, triggerauthentications) as well.
    """
    mock = _Emulator()
    mock.write_hooks = []
    for key, info in RESOURCES.items():
        mock.resources[key] = info
    for key, info in KEDA_RESOURCES.items() if keda else ():
        mock.resources[key] = info
    mock.baseline_payloads = len(mock._payloads)
    mock.access = access = Access(rbac=chart_rbac(chart_values))
    with tempfile.TemporaryDirectory(prefix="fake-kube-") as tmp:
        ca = TestCA.create(Path(tmp)) if tls else None
        client_context = ca.client_context() if ca is not None else None
        server_args: dict[str, Any] = {"client_fct": _admin_client(client_context)}
        if ca is not None:
            server_args["server_cls"] = _tls_server(ca.server_context())
        async with mock, kmock.Server(mock, **server_args):
            kube = FakeKube(mock=mock, access=access, ca=ca)
            kube.write_kubeconfig()
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
