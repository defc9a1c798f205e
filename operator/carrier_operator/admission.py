"""The injector's kopf admission face: thin handlers over :mod:`injection` and :mod:`validation`.

Importing this module registers the handlers (kopf's default registry); the operator's start-up
calls :func:`configure` to give kopf the HTTPS server. The webhook configurations themselves
belong to the Helm chart (``settings.admission.managed = None``); this process only keeps their
``caBundle`` current in self-signed mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from .background import cancel_and_wait
from .binding import BINDING_LABEL, GROUP, PLURAL, VERSION
from .bindings_cache import BindingLookup, index_entry
from .cert_directory import CertDirectory
from .cert_self_signed import SelfSigned
from .cert_source import CertSource
from .config import MUTATE_PODS_ID, VALIDATE_BINDINGS_ID, OperatorSettings
from .injection import (
    InjectionError,
    apply_patch,
    plan_injection,
    readiness_problem,
)
from .kubeapi import KubeAPI, KubeAPIError
from .nodes import NodeKubelets, SidecarMode
from .validation import binding_problems
from .webhook_server import InjectorServer

logger = logging.getLogger(__name__)
MEMO_KEY = "carrier_injector"

NODES_FIRST_LIST = 10.0  # seconds the webhook server's start waits for the first node list
INDEX = "carrier_bindings"  # the kwarg name kopf gives the index in handlers
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
ENDPOINTS = {
    MUTATE_PODS_ID: {"group": "", "version": "v1", "resource": "pods"},
    VALIDATE_BINDINGS_ID: {"group": GROUP, "version": VERSION, "resource": PLURAL},
}


@dataclass
class Injector:
    """Everything the handlers need, set once by :func:`configure`."""

    config: OperatorSettings
    api: KubeAPI | None = None
    lookup: BindingLookup = field(init=False)
    nodes: NodeKubelets = field(init=False)
    _node_watch: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.lookup = BindingLookup(self.get_api, self.config.namespace_list)
        self.nodes = NodeKubelets(self.config.native_sidecar, self.get_api)

    async def get_api(self) -> KubeAPI:
        if self.api is None:
            self.api = await KubeAPI.from_environment()
        return self.api

    @property
    def mode(self) -> SidecarMode:
        return self.nodes.mode

    async def start(self) -> None:
        """Start following the nodes; the first pods wait (bounded) for the first list."""
        if self._node_watch is None:
            self._node_watch = asyncio.ensure_future(self.nodes.run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.nodes.synced.wait(), NODES_FIRST_LIST)

    async def stop(self) -> None:
        """Stop following the nodes (kopf waits 5 s for tasks left running at exit)."""
        await cancel_and_wait(self._node_watch)
        self._node_watch = None


REFUSAL_LOG_WINDOW = 60.0  # seconds: one WARNING per (namespace, binding, reason) at most


class RefusalLog:
    """Refused pods are the user's pods being refused, not operator faults: one WARNING per
    (namespace, binding, reason) per window, however often a ReplicaSet retries."""

    def __init__(
        self, window: float = REFUSAL_LOG_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._last: dict[tuple[str, str, str], float] = {}

    def refused(self, namespace: str, binding: str, reason: str, *, pod: bool = True) -> bool:
        """Log the refusal unless it was logged within the window; True if logged."""
        now = self._clock()
        key = (namespace, binding, reason)
        last = self._last.get(key)
        if last is not None and now - last < self.window:
            return False
        if len(self._last) > 10_000:  # bounded: forget what is past the window
            self._last = {k: t for k, t in self._last.items() if now - t < self.window}
        self._last[key] = now
        logger.warning(
            "refused a pod using the binding" if pod else "refused a CarrierBinding",
            extra={
                "namespace": namespace,
                "binding": binding,
                "reason": reason,
                "note": f"logged at most once per {self.window:g}s per binding and reason",
            },
        )
        return True


_refusals = RefusalLog()


class _KopfAdmissionLines(logging.Filter):
    """Drops kopf's per-review lines for our admission handlers ("Webhook 'mutate-pods'
    succeeded." at INFO, "... failed permanently" at ERROR): the handlers log themselves, at
    DEBUG for an admission and at a rate-limited WARNING for a refusal."""

    _prefixes = tuple(
        f"{word} '{handler_id}'" for handler_id in ENDPOINTS for word in ("Webhook", "Handler")
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self._prefixes)


_kopf_lines = _KopfAdmissionLines()


def _refuse(namespace: str, binding: str, message: str, code: int) -> kopf.AdmissionError:
    _refusals.refused(namespace, binding, message)
    return kopf.AdmissionError(message, code=code)


def configure(
    settings: kopf.OperatorSettings,
    config: OperatorSettings,
    memo: kopf.Memo,
    *,
    api: KubeAPI | None = None,
    addr: str | None = None,  # every interface, IPv4 and IPv6 (dual-stack clusters)
    cert_source: CertSource | None = None,
) -> InjectorServer:
    """Point kopf's admission server at our HTTPS endpoint (on ``config.webhook_port``).

    ``api``, ``addr`` and ``cert_source`` exist for tests and benchmarks;
    the operator passes only the two settings objects.
    """
    injector = Injector(config, api=api)
    memo[MEMO_KEY] = injector  # the handlers find it in kopf's memo, as reconcile keeps its own
    if cert_source is None:
        cert_source = (
            CertDirectory(config.cert_dir)
            if config.cert_dir
            else SelfSigned(injector.get_api, config, config.service_namespace)
        )
    server = InjectorServer(
        source=cert_source,
        endpoints=ENDPOINTS,
        addr=addr,
        port=config.webhook_port,
        host=config.service_host,
        on_start=injector.start,
    )
    settings.admission.server = server
    settings.admission.managed = None
    logging.getLogger("kopf.objects").addFilter(_kopf_lines)
    return server


def injector_of(memo: Mapping[str, Any]) -> Injector | None:
    """The injector :func:`configure` put in kopf's memo, if any."""
    injector = memo.get(MEMO_KEY)
    return injector if isinstance(injector, Injector) else None


def _require(memo: Mapping[str, Any]) -> Injector:
    injector = injector_of(memo)
    if injector is None:
        raise kopf.AdmissionError("the carrier injector is not configured", code=503)
    return injector


# --- handlers --------------------------------------------------------------------------------


# Async handlers: kopf runs a plain function in its thread pool, one hop per event per handler.
async def _index_bindings(name: str, namespace: str | None, body: kopf.Body, **_: Any) -> object:
    return index_entry(namespace or "", name, body)


async def _bindings_synced(memo: kopf.Memo, **_: Any) -> None:
    injector = injector_of(memo)
    if injector is not None:
        injector.lookup.mark_synced()


async def _mutate_pod(
    body: kopf.Body,
    patch: kopf.Patch,
    warnings: list[str],
    memo: kopf.Memo,
    operation: str | None = None,
    **kwargs: Any,
) -> None:
    injector = _require(memo)
    pod: Mapping[str, Any] = body
    meta = pod.get("metadata") or {}
    name = (meta.get("labels") or {}).get(BINDING_LABEL)
    if not isinstance(name, str):
        return  # not opted in (the webhook's objectSelector should not have sent it)
    if operation != "CREATE":
        # A pod's spec is immutable after creation: whatever the webhook configuration sends,
        # only a CREATE may be mutated (a patch to an UPDATE would be rejected by the API).
        return
    namespace = meta.get("namespace")
    if not isinstance(namespace, str) or not _NAME.fullmatch(namespace):
        raise _refuse(str(namespace), name, "cannot tell the pod's namespace from the request", 400)
    if not _NAME.fullmatch(name):
        raise _refuse(
            namespace, name, f"label {BINDING_LABEL}={name!r} does not name a CarrierBinding", 400
        )
    try:
        binding = await injector.lookup.find(kwargs.get(INDEX), namespace, name)
    except KubeAPIError as exc:
        raise _refuse(
            namespace, name, f"cannot look up CarrierBinding {name!r}: {exc}", 503
        ) from None
    problem = readiness_problem(name, namespace, binding)
    if problem is not None or binding is None:
        message = problem or "no binding"
        if injector.config.on_missing_binding == "admit":
            warnings.append(f"{message}: admitted without the Carrier sidecar")
            logger.debug(
                "admitted a pod without the sidecar",
                extra={"namespace": namespace, "binding": name, "reason": message},
            )
            return
        raise _refuse(namespace, name, message, 403)
    try:
        mode = injector.mode
        plan = plan_injection(
            dict(pod), binding, injector.config, native=mode.native, mode_note=str(mode)
        )
    except InjectionError as exc:
        raise _refuse(
            namespace, name, f"cannot inject the Carrier sidecar: {exc}", exc.code
        ) from None
    warnings.extend(plan.warnings)
    if plan.patch:
        ops = plan.patch
        patch.fns.append(lambda raw: apply_patch(cast(dict[str, Any], raw), ops))
    logger.debug(
        "admitted a pod with the sidecar",
        extra={"namespace": namespace, "binding": name, "patch_operations": len(plan.patch)},
    )


def _validate_binding(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    injector = _require(memo)
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        raise kopf.AdmissionError("spec: must be an object", code=400)
    problems = binding_problems(
        dict(spec), namespace, allow_remote_webhooks=injector.config.allow_remote_webhooks
    )
    if problems:
        name = str(meta.get("name") or "")
        _refusals.refused(namespace, name, "; ".join(problems), pod=False)
        raise kopf.AdmissionError("; ".join(problems), code=422)


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the injector's handlers to a kopf registry (the default one on import)."""
    resource = (GROUP, VERSION, PLURAL)
    kopf.index(*resource, id=INDEX, registry=registry)(_index_bindings)
    kopf.on.event(*resource, id="carrier-bindings-synced", registry=registry)(_bindings_synced)
    kopf.on.mutate(
        "v1",
        "pods",
        id=MUTATE_PODS_ID,
        operations=["CREATE"],
        labels={BINDING_LABEL: kopf.PRESENT},
        registry=registry,
    )(_mutate_pod)
    kopf.on.validate(
        *resource, id=VALIDATE_BINDINGS_ID, operations=["CREATE", "UPDATE"], registry=registry
    )(_validate_binding)
    kopf.on.cleanup(registry=registry)(_stop_injector)


async def _stop_injector(memo: kopf.Memo, **_: Any) -> None:
    injector = injector_of(memo)
    if injector is not None:
        await injector.stop()


register(kopf.get_default_registry())
