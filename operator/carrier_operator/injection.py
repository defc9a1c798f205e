"""What the injector adds to a pod, as a pure function: (pod, binding, settings, mode) → JSONPatch.

No I/O here: the admission handler looks the binding up and passes it in, so every rule below is
table-testable and the same patch comes out for the same inputs (reinvocation-safe).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carrier_sidecar.settings import Settings

from .binding import (
    BindingError,
    passthrough_env,
    render_env,
    settings_hash,
    sidecar_hash,
    validate_spec,
    value_at,
)
from .config import (
    INJECTED_ANNOTATION,
    SIDECAR_CONTAINER,
    SIDECAR_MODE_ANNOTATION,
    OperatorSettings,
)
from .drain_hook import TOKEN_ENV, grace_warnings, hook_ops, new_token
from .resources import default_resources, memory_warnings
from .validation import policy_problems

JSONPatch = list[dict[str, Any]]

# A fixed non-root uid/gid (distroless "nonroot"): the restricted profile wants a numeric user.
SIDECAR_UID = 65532
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")  # the Job controller sets both

# Web-identity / pod-identity env the EKS webhooks add to the containers that existed then.
AWS_IDENTITY_ENV = (
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)
AWS_COMPANION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_STS_REGIONAL_ENDPOINTS")
AWS_TOKEN_VOLUMES = ("aws-iam-token", "eks-pod-identity-token")


class InjectionError(ValueError):
    """The pod cannot get the sidecar; ``str()`` says why and what to do, ``code`` is HTTP-ish."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Binding:
    """A CarrierBinding as the injector needs it (from the index or the API)."""

    name: str
    namespace: str
    spec: Mapping[str, Any]
    status: Mapping[str, Any]

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Binding:
        meta = _mapping(obj.get("metadata"), "metadata")
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            spec=_mapping(obj.get("spec"), "spec"),
            status=_mapping(obj.get("status"), "status"),
        )


@dataclass(frozen=True)
class Plan:
    """The outcome of one admission: the patch and the warnings to hand back."""

    patch: JSONPatch
    warnings: tuple[str, ...] = ()


# --- decisions ------------------------------------------------------------------------------


def readiness_problem(name: str, namespace: str, binding: Binding | None) -> str | None:
    """Why a pod may not use this binding now (missing or not ``Valid``), or None.

    The gate is ``Valid`` (the spec is accepted and renders), never the operator's own queue
    read: a missing IAM permission or an SQS blip must not refuse workloads. A status written
    before ``Valid`` existed only has ``Ready``, which then stands in for it."""
    if binding is None:
        return f'CarrierBinding "{name}" not found in namespace "{namespace}"'
    conditions = binding.status.get("conditions")
    found: dict[str, Mapping[str, Any]] = {}
    if isinstance(conditions, list):
        found = {
            str(c.get("type")): c for c in conditions if isinstance(c, Mapping) and c.get("type")
        }
    gate = found.get("Valid")
    legacy = found.get("Ready")
    if gate is None and legacy is not None and legacy.get("reason") != "InvalidSpec":
        return None  # an older operator's Ready=False/Unknown was about the queue, not the spec
    gate = gate or legacy
    if gate is None:
        return (
            f'CarrierBinding "{name}" in namespace "{namespace}" is not validated yet '
            "(the operator has not reported on it)"
        )
    if str(gate.get("status")) != "True":
        reason = str(gate.get("reason") or "NotValid")
        message = str(gate.get("message") or "").strip()
        detail = f"{reason}: {message}" if message else reason
        return f'CarrierBinding "{name}" in namespace "{namespace}" is not valid: {detail}'
    return None


# --- the sidecar ----------------------------------------------------------------------------


def sidecar_env(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rendered ``CARRIER_*`` env (the sidecar's own model), then the binding's extra env."""
    try:
        env = [{"name": k, "value": v} for k, v in render_env(spec).items()]
        return env + passthrough_env(spec)
    except BindingError as exc:
        raise InjectionError(f"the binding is invalid: {exc}") from None


def sidecar_container(
    spec: Mapping[str, Any], config: OperatorSettings, *, native: bool
) -> dict[str, Any]:
    """The ``carrier`` container for a binding spec, restricted-profile compliant."""
    settings = _settings(spec)
    image = value_at(spec, "sidecar.image") or config.sidecar_image
    resources = value_at(spec, "sidecar.resources") or default_resources(settings, config)
    container: dict[str, Any] = {
        "name": SIDECAR_CONTAINER,
        "image": str(image),
        "imagePullPolicy": config.sidecar_image_pull_policy,
        "env": sidecar_env(spec),
        "resources": dict(resources),
        "securityContext": restricted_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    bind = settings.http_bind
    if bind is not None:
        port = bind[1]
        container["ports"] = [{"name": "carrier-http", "containerPort": port, "protocol": "TCP"}]
        # /healthz = the process runs; /readyz = it may receive. Startup only waits for the
        # process: readiness may depend on the worker, which (as a native sidecar) starts later.
        container["startupProbe"] = _probe("/healthz", port, period=1, failures=30)
        container["livenessProbe"] = _probe("/healthz", port, period=10, failures=3)
        container["readinessProbe"] = _probe("/readyz", port, period=5, failures=2)
    if native:
        container["restartPolicy"] = "Always"
    return container


def restricted_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": SIDECAR_UID,
        "runAsGroup": SIDECAR_UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def injected_record(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The injector's annotation on a pod, parsed (None if absent or unreadable)."""
    annotations = value_at(pod, "metadata.annotations")
    if not isinstance(annotations, Mapping):
        return None
    raw = annotations.get(INJECTED_ANNOTATION)
    if not isinstance(raw, str):
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return {"raw": raw}
    return record if isinstance(record, dict) else {"raw": raw}


# --- the patch ------------------------------------------------------------------------------


def plan_injection(
    pod: Mapping[str, Any],
    binding: Binding,
    config: OperatorSettings,
    *,
    native: bool,
    drain_token: str | None = None,
    mode_note: str | None = None,
) -> Plan:
    """The minimal add-only JSONPatch that gives ``pod`` the sidecar (or completes it), and
    the workers a preStop hook that drains it first (``drain_token``: fresh if not given)."""
    spec = _mapping(pod.get("spec"), "spec")
    containers = _containers(spec, "containers")
    init_containers = _containers(spec, "initContainers")
    existing = _find_sidecar(containers, init_containers)
    if existing is not None:
        # Reinvocation (or a pod templated from an injected one): never inject twice, only
        # give our container the AWS identity another webhook added after our first pass.
        list_name, index = existing
        ours = (containers if list_name == "containers" else init_containers)[index]
        others = [c for c in containers + init_containers if c is not ours]
        return Plan(_aws_identity_ops(f"/spec/{list_name}/{index}", ours, others, spec))
    if injected_record(pod) is not None:
        return Plan([])  # injected before and removed on purpose: respect that

    _check_policy(binding, config)
    rendered = _render(binding.spec, config, native)
    container = copy.deepcopy(rendered.container)
    _check_port_conflict(container, containers + init_containers)
    _copy_aws_identity(container, containers + init_containers, spec)
    token = drain_token or new_token()
    hooks, hook_warnings = hook_ops(containers, rendered.settings, token)
    if rendered.settings.http_bind is not None:
        container["env"] = [*container.get("env", []), {"name": TOKEN_ENV, "value": token}]

    ops = _add_container(spec, "initContainers" if native else "containers", container)
    record = {
        "binding": binding.name,
        "settingsHash": rendered.settings_hash,
        "sidecarHash": rendered.sidecar_hash,
        "image": container["image"],
        "native": native,
    }
    annotations = {INJECTED_ANNOTATION: json.dumps(record, separators=(",", ":"), sort_keys=True)}
    if mode_note is not None:
        annotations[SIDECAR_MODE_ANNOTATION] = mode_note
    ops += _add_annotations(pod, annotations)
    metadata = _mapping(pod.get("metadata"), "metadata")
    ops += hooks
    warnings = grace_warnings(spec, rendered.settings.shutdown_timeout) + hook_warnings
    warnings += memory_warnings(container["resources"], rendered.settings)
    if not native:
        warnings += _job_warnings(metadata, mode_note)
    return Plan(ops, tuple(warnings))


def _add_container(spec: Mapping[str, Any], list_name: str, container: Any) -> JSONPatch:
    """Append to the list, or create it: a JSONPatch ``add`` cannot append to a missing list."""
    if isinstance(spec.get(list_name), list):
        return [{"op": "add", "path": f"/spec/{list_name}/-", "value": container}]
    return [{"op": "add", "path": f"/spec/{list_name}", "value": [container]}]


def _add_annotations(pod: Mapping[str, Any], annotations: Mapping[str, str]) -> JSONPatch:
    """Add-only, whatever the pod already has, one of three cases:

    | the pod has                      | the patch adds                          |
    |----------------------------------|-----------------------------------------|
    | ``metadata.annotations``         | each key (``/`` and ``~`` escaped)      |
    | ``metadata`` without annotations | ``/metadata/annotations``, the whole map |
    | no ``metadata``                  | ``/metadata`` holding the map           |
    """
    metadata = pod.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("annotations"), Mapping):
        return [
            {"op": "add", "path": f"/metadata/annotations/{escape_pointer(key)}", "value": value}
            for key, value in annotations.items()
        ]
    if isinstance(metadata, Mapping):
        return [{"op": "add", "path": "/metadata/annotations", "value": dict(annotations)}]
    return [{"op": "add", "path": "/metadata", "value": {"annotations": dict(annotations)}}]


def job_owner(metadata: Mapping[str, Any]) -> str | None:
    """The Job a pod belongs to (owner reference or the Job controller's labels), or None."""
    for owner in _items(metadata.get("ownerReferences")):
        if owner.get("kind") == "Job" and str(owner.get("apiVersion", "")).startswith("batch/"):
            return str(owner.get("name") or "?")
    labels = metadata.get("labels")
    if isinstance(labels, Mapping):
        for label in JOB_NAME_LABELS:
            if isinstance(labels.get(label), str):
                return str(labels[label])
    return None


def _job_warnings(metadata: Mapping[str, Any], mode_note: str | None) -> list[str]:
    job = job_owner(metadata)
    if job is None:
        return []
    why = f" (sidecar mode: {mode_note})" if mode_note else ""
    return [
        f"this pod belongs to Job {job!r} and gets the Carrier sidecar as a regular "
        f"container{why}: the sidecar never exits, so the pod never completes and the Job "
        "never finishes. Native sidecars (every node's kubelet >= 1.29, or "
        "CARRIER_OPERATOR_NATIVE_SIDECAR=always) stop with the Job's containers"
    ]


def escape_pointer(token: str) -> str:
    """RFC 6901: ``~`` → ``~0``, ``/`` → ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def apply_patch(doc: dict[str, Any], ops: JSONPatch) -> None:
    """Apply our add-only patch in place (how kopf turns it into its response patch)."""
    for op in ops:
        if op.get("op") != "add":
            raise ValueError(f"only add operations are produced here, not {op.get('op')!r}")
        *parents, last = [
            t.replace("~1", "/").replace("~0", "~") for t in str(op["path"]).split("/")[1:]
        ]
        node: Any = doc
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[token]
        value = copy.deepcopy(op["value"])
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), value)
        else:
            node[last] = value


# --- internals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rendered:
    container: dict[str, Any]
    settings_hash: str
    sidecar_hash: str
    settings: Settings


def _spec_key(spec: Mapping[str, Any]) -> str:
    try:
        return json.dumps(spec, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InjectionError("the binding spec is not plain JSON") from None


def _render(spec: Mapping[str, Any], config: OperatorSettings, native: bool) -> _Rendered:
    """The container for a spec, memoised: validating settings costs ~0.5 ms per call, and
    every pod of a binding renders the same container."""
    return _render_cached(_spec_key(spec), config, native)


def _check_policy(binding: Binding, config: OperatorSettings) -> None:
    """The validating webhook's rules again: a binding stored before a rule was turned on, or
    with the validating webhook off, must not reach a pod (memoised like the render)."""
    problems = _policy_cached(_spec_key(binding.spec), binding.namespace, config)
    if problems:
        raise InjectionError(
            f'CarrierBinding "{binding.name}" breaks the operator\'s rules: {"; ".join(problems)}',
            code=403,
        )


@functools.lru_cache(maxsize=256)
def _policy_cached(spec_json: str, namespace: str, config: OperatorSettings) -> tuple[str, ...]:
    return tuple(policy_problems(json.loads(spec_json), namespace, config))


@functools.lru_cache(maxsize=256)
def _render_cached(spec_json: str, config: OperatorSettings, native: bool) -> _Rendered:
    spec = json.loads(spec_json)
    settings = _settings(spec)
    return _Rendered(
        container=sidecar_container(spec, config, native=native),
        settings_hash=settings_hash(settings.to_env()),
        sidecar_hash=sidecar_hash(spec),
        settings=settings,
    )


def _settings(spec: Mapping[str, Any]) -> Settings:
    try:
        return validate_spec(spec)
    except BindingError as exc:
        raise InjectionError(f"the binding is invalid: {exc}") from None


def _probe(path: str, port: int, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _find_sidecar(
    containers: Sequence[Mapping[str, Any]], init_containers: Sequence[Mapping[str, Any]]
) -> tuple[str, int] | None:
    for list_name, items in (("containers", containers), ("initContainers", init_containers)):
        for index, item in enumerate(items):
            if item.get("name") == SIDECAR_CONTAINER:
                return list_name, index
    return None


def _check_port_conflict(ours: Mapping[str, Any], others: Sequence[Mapping[str, Any]]) -> None:
    wanted = {p["containerPort"] for p in ours.get("ports", [])}
    for other in others:
        ports = other.get("ports")
        for port in ports if isinstance(ports, list) else []:
            number = port.get("containerPort") if isinstance(port, Mapping) else None
            if isinstance(number, int) and number in wanted:
                raise InjectionError(
                    f"container {other.get('name')!r} already uses port {number}, "
                    "the sidecar's probe port: set spec.sidecar.httpAddr in the CarrierBinding "
                    "to another port"
                )


def _identity_source(
    others: Sequence[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The AWS identity env and token mounts of the first container that has them."""
    for other in others:
        env = [e for e in _items(other.get("env")) if e.get("name") in AWS_IDENTITY_ENV]
        if env:
            names = AWS_IDENTITY_ENV + AWS_COMPANION_ENV
            env = [e for e in _items(other.get("env")) if e.get("name") in names]
            mounts = [
                m for m in _items(other.get("volumeMounts")) if m.get("name") in AWS_TOKEN_VOLUMES
            ]
            return env, mounts
    return [], []


def _missing_identity(
    ours: Mapping[str, Any], others: Sequence[Mapping[str, Any]], pod_spec: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    env, mounts = _identity_source(others)
    have_env = _strings(e.get("name") for e in _items(ours.get("env")))
    have_mounts = _strings(m.get("name") for m in _items(ours.get("volumeMounts")))
    have_paths = _strings(m.get("mountPath") for m in _items(ours.get("volumeMounts")))
    volumes = _strings(v.get("name") for v in _items(pod_spec.get("volumes")))
    new_env = [dict(e) for e in env if e.get("name") not in have_env]
    new_mounts = [
        dict(m)
        for m in mounts
        if m.get("name") not in have_mounts
        and isinstance(m.get("mountPath"), str)
        and m["mountPath"] not in have_paths
        and m.get("name") in volumes
    ]
    return new_env, new_mounts


def _copy_aws_identity(
    ours: dict[str, Any], others: Sequence[Mapping[str, Any]], pod_spec: Mapping[str, Any]
) -> None:
    env, mounts = _missing_identity(ours, others, pod_spec)
    if env:
        ours["env"] = [*ours.get("env", []), *env]
    if mounts:
        ours["volumeMounts"] = [*ours.get("volumeMounts", []), *mounts]


def _aws_identity_ops(
    path: str,
    ours: Mapping[str, Any],
    others: Sequence[Mapping[str, Any]],
    pod_spec: Mapping[str, Any],
) -> JSONPatch:
    env, mounts = _missing_identity(ours, others, pod_spec)
    ops: JSONPatch = []
    for key, items in (("env", env), ("volumeMounts", mounts)):
        if not items:
            continue
        if isinstance(ours.get(key), list):
            ops.extend({"op": "add", "path": f"{path}/{key}/-", "value": item} for item in items)
        else:
            ops.append({"op": "add", "path": f"{path}/{key}", "value": items})
    return ops


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = spec.get(key)
    if value is None:
        if key == "containers":
            raise InjectionError("spec.containers: missing")
        return []
    items = _sequence(value, f"spec.{key}")
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InjectionError(f"spec.{key}[{index}]: not an object")
    return list(items)


def _strings(values: Iterable[Any]) -> set[str]:
    return {v for v in values if isinstance(v, str)}


def _items(value: Any) -> list[Mapping[str, Any]]:
    """Well-formed entries of a list field; anything else counts as absent."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _sequence(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise InjectionError(f"{where}: not a list")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InjectionError(f"{where}: not an object")
    return value
