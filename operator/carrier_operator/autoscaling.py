"""``spec.autoscaling`` rendered into the KEDA objects the operator owns (pure, no I/O).

The binding already names the queue, its region and endpoint; a hand-written ScaledObject would
repeat them. From ``spec.autoscaling`` this module renders a ``keda.sh/v1alpha1`` ScaledObject
for the target workload (and, for ``podIdentity``, the TriggerAuthentication KEDA requires for
it: pod identity lives there, not in a trigger). Two triggers:

- ``source: sqs`` (default): KEDA's own ``aws-sqs-queue`` scaler reads the queue with KEDA's
  AWS identity (metadata names as in kedacore/keda ``pkg/scalers/aws_sqs_queue_scaler.go``);
- ``source: operator``: KEDA's ``metrics-api`` scaler reads the operator's per-binding depth
  endpoint (:func:`depth_document`), so KEDA needs no AWS identity at all.

Field names, defaults and bounds live here once; ``crd.py`` builds the schema from them and
:func:`autoscaling_problems` is the validating webhook's (and the reconciler's) check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carrier_sidecar.settings import Settings

from .binding import BINDING_LABEL, GROUP, KIND, VERSION
from .queue_place import region_for

KEDA_GROUP = "keda.sh"
KEDA_VERSION = "v1alpha1"
KEDA_API = f"{KEDA_GROUP}/{KEDA_VERSION}"
KEDA_INSTALL = (
    "install KEDA (https://keda.sh/docs/latest/deploy/, e.g. `helm install keda "
    "kedacore/keda -n keda --create-namespace`), or remove spec.autoscaling"
)
MANAGED_BY = {"app.kubernetes.io/managed-by": "carrier-operator"}
TRIGGER_NAME = "carrier-queue"
TARGET_KINDS = ("Deployment", "StatefulSet")
SOURCES = ("sqs", "operator")
POD_IDENTITY_PROVIDERS = ("aws",)
IDENTITY_OWNERS = ("keda", "workload")
DEPTH_PATH = "/bindings/{namespace}/{name}/queue"

# name -> (default, minimum, maximum): the integer fields, with KEDA's own defaults where KEDA has
# one (pollingInterval 30, cooldownPeriod 300, queueLength 5, activation 0, minReplicaCount 0).
INTEGERS: dict[str, tuple[int | None, int, int]] = {
    "minReplicas": (0, 0, 1000),
    "maxReplicas": (None, 1, 1000),
    "messagesPerReplica": (5, 1, 100_000),
    "activationMessages": (0, 0, 100_000),
    "pollingSeconds": (30, 1, 3600),
    "cooldownSeconds": (300, 0, 86_400),
}
REQUIRED = ("target", "maxReplicas")
FIELDS = frozenset(
    {*INTEGERS, "target", "includeInFlight", "source", "podIdentity", "authenticationRef"}
)


@dataclass(frozen=True)
class Scaling:
    """A valid ``spec.autoscaling`` with every default filled in."""

    target_kind: str
    target_name: str
    min_replicas: int
    max_replicas: int
    messages_per_replica: int
    activation_messages: int
    polling_seconds: int
    cooldown_seconds: int
    include_in_flight: bool
    source: str
    pod_identity: Mapping[str, str] | None
    authentication_ref: str | None

    @property
    def target(self) -> str:
        return f"{self.target_kind}/{self.target_name}"

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Scaling:
        """From a spec section :func:`autoscaling_problems` found no fault with."""
        target = raw.get("target") or {}
        ints = {key: raw.get(key, default) for key, (default, _lo, _hi) in INTEGERS.items()}
        identity = raw.get("podIdentity")
        ref = raw.get("authenticationRef")
        return cls(
            target_kind=str(target.get("kind") or TARGET_KINDS[0]),
            target_name=str(target["name"]),
            min_replicas=int(ints["minReplicas"]),
            max_replicas=int(ints["maxReplicas"]),
            messages_per_replica=int(ints["messagesPerReplica"]),
            activation_messages=int(ints["activationMessages"]),
            polling_seconds=int(ints["pollingSeconds"]),
            cooldown_seconds=int(ints["cooldownSeconds"]),
            include_in_flight=raw.get("includeInFlight", True) is not False,
            source=str(raw.get("source") or SOURCES[0]),
            pod_identity={str(k): str(v) for k, v in identity.items()} if identity else None,
            authentication_ref=str(ref["name"]) if ref else None,
        )


def scaling_of(spec: Mapping[str, Any]) -> Scaling | None:
    """The binding's autoscaling, or None when it asks for none (or asks for it wrongly)."""
    raw = spec.get("autoscaling")
    if not isinstance(raw, Mapping) or autoscaling_problems(raw):
        return None
    return Scaling.of(raw)


# --- the checks (what the CRD schema says, for clusters and tests where it did not run) ------
def autoscaling_problems(raw: Any, settings: Settings | None = None) -> list[str]:
    """Every fault of ``spec.autoscaling``, each ``spec.autoscaling.field: what is wrong``."""
    where = "spec.autoscaling"
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [f"{where}: must be an object"]
    problems = [f"{where}.{key}: unknown field" for key in sorted(set(raw) - FIELDS)]
    problems += [f"{where}.{key}: required" for key in REQUIRED if raw.get(key) is None]
    problems += _target_problems(raw.get("target"))
    for key, (_default, low, high) in INTEGERS.items():
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}.{key}: must be a whole number, got {value!r}")
        elif not low <= value <= high:
            problems.append(f"{where}.{key}: must be between {low} and {high}, got {value}")
    fewest, most = raw.get("minReplicas", 0), raw.get("maxReplicas")
    if isinstance(fewest, int) and isinstance(most, int) and fewest > most:
        problems.append(
            f"{where}.minReplicas: {fewest} is above maxReplicas {most}; lower it or raise "
            "maxReplicas"
        )
    if "includeInFlight" in raw and not isinstance(raw["includeInFlight"], bool):
        problems.append(f"{where}.includeInFlight: must be true or false")
    problems += _auth_problems(raw)
    source = raw.get("source") or SOURCES[0]
    if settings is not None and source == "sqs" and not problems and region_for(settings) is None:
        problems.append(
            "spec.queue.region: KEDA's aws-sqs-queue scaler needs a region: set spec.queue."
            "region (or use spec.autoscaling.source: operator)"
        )
    return problems


def _target_problems(target: Any) -> list[str]:
    where = "spec.autoscaling.target"
    if target is None:
        return []
    if not isinstance(target, Mapping):
        return [f"{where}: must be {{kind: Deployment|StatefulSet, name}}"]
    problems = [f"{where}.{key}: unknown field" for key in sorted(set(target) - {"kind", "name"})]
    name = target.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}.name: required: the workload to scale, in this namespace")
    kind = target.get("kind", TARGET_KINDS[0])
    if kind not in TARGET_KINDS:
        problems.append(f"{where}.kind: must be Deployment or StatefulSet, got {kind!r}")
    return problems


def _auth_problems(raw: Mapping[str, Any]) -> list[str]:
    where = "spec.autoscaling"
    source = raw.get("source", SOURCES[0])
    if source not in SOURCES:
        return [f"{where}.source: must be sqs or operator, got {source!r}"]
    identity, ref = raw.get("podIdentity"), raw.get("authenticationRef")
    if source == "operator":
        return [
            f"{where}.{key}: not used with source: operator (KEDA reads the operator's "
            "endpoint, no AWS identity); remove it"
            for key, value in (("podIdentity", identity), ("authenticationRef", ref))
            if value is not None
        ]
    if (identity is None) == (ref is None):
        return [
            f"{where}: source sqs needs exactly one of podIdentity: {{provider: aws}} and "
            "authenticationRef: {name} (how KEDA authenticates to SQS)"
        ]
    problems: list[str] = []
    if identity is not None:
        problems += _identity_problems(identity)
    if ref is not None and (
        not isinstance(ref, Mapping)
        or not isinstance(ref.get("name"), str)
        or not ref.get("name")
        or set(ref) - {"name"}
    ):
        problems.append(f"{where}.authenticationRef: must be {{name: <TriggerAuthentication>}}")
    return problems


def _identity_problems(identity: Any) -> list[str]:
    where = "spec.autoscaling.podIdentity"
    if not isinstance(identity, Mapping):
        return [f"{where}: must be {{provider: aws}}"]
    problems = [
        f"{where}.{key}: unknown field"
        for key in sorted(set(identity) - {"provider", "roleArn", "identityOwner"})
    ]
    if identity.get("provider") not in POD_IDENTITY_PROVIDERS:
        problems.append(f"{where}.provider: must be aws, got {identity.get('provider')!r}")
    owner = identity.get("identityOwner")
    if owner is not None and owner not in IDENTITY_OWNERS:
        problems.append(f"{where}.identityOwner: must be keda or workload, got {owner!r}")
    arn = identity.get("roleArn")
    if arn is not None and (not isinstance(arn, str) or not arn.startswith("arn:")):
        problems.append(f"{where}.roleArn: must be an IAM role ARN (arn:...), got {arn!r}")
    if arn is not None and owner is not None:
        problems.append(f"{where}: set roleArn or identityOwner, not both (KEDA's rule)")
    return problems


# --- the objects ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Owner:
    """The binding that owns the KEDA objects (garbage collection deletes them with it)."""

    namespace: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        # No blockOwnerDeletion: it would need update on carrierbindings/finalizers.
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {**MANAGED_BY, BINDING_LABEL: self.name},
            "ownerReferences": [self.reference()],
        }


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether ``obj``'s controller is the binding with this ``uid``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(
        isinstance(ref, Mapping) and ref.get("uid") == uid and ref.get("controller") is True
        for ref in refs
    )


def depth_url(base: str, namespace: str, name: str) -> str:
    return base.rstrip("/") + DEPTH_PATH.format(namespace=namespace, name=name)


def trigger(
    scaling: Scaling, settings: Settings, queue_url: str, endpoint_base: str, owner: Owner
) -> dict[str, Any]:
    """The ScaledObject's one trigger."""
    if scaling.source == "operator":
        return {
            "type": "metrics-api",
            "name": TRIGGER_NAME,
            "metricType": "AverageValue",
            "metadata": {
                "url": depth_url(endpoint_base, owner.namespace, owner.name),
                "format": "json",
                "valueLocation": "value",
                "targetValue": str(scaling.messages_per_replica),
                "activationTargetValue": str(scaling.activation_messages),
            },
        }
    metadata = {
        "queueURL": queue_url,
        "awsRegion": str(region_for(settings)),
        "queueLength": str(scaling.messages_per_replica),
        "activationQueueLength": str(scaling.activation_messages),
        "scaleOnInFlight": "true" if scaling.include_in_flight else "false",
    }
    if settings.sqs_endpoint:
        metadata["awsEndpoint"] = settings.sqs_endpoint
    return {
        "type": "aws-sqs-queue",
        "name": TRIGGER_NAME,
        "metricType": "AverageValue",
        "metadata": metadata,
        "authenticationRef": {"name": auth_name(scaling, owner)},
    }


def auth_name(scaling: Scaling, owner: Owner) -> str:
    """The TriggerAuthentication KEDA uses: the binding's own, or the one ``podIdentity`` makes."""
    return scaling.authentication_ref or owner.name


def scaled_object(
    scaling: Scaling, settings: Settings, queue_url: str, endpoint_base: str, owner: Owner
) -> dict[str, Any]:
    """The ScaledObject for the binding; every spec key always set, so a merge patch of the spec
    replaces it whole."""
    return {
        "apiVersion": KEDA_API,
        "kind": "ScaledObject",
        "metadata": owner.metadata(),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": scaling.target_kind,
                "name": scaling.target_name,
            },
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": scaling.polling_seconds,
            "cooldownPeriod": scaling.cooldown_seconds,
            "triggers": [trigger(scaling, settings, queue_url, endpoint_base, owner)],
        },
    }


def trigger_authentication(scaling: Scaling, owner: Owner) -> dict[str, Any] | None:
    """For ``podIdentity``: the TriggerAuthentication carrying it (KEDA reads pod identity only
    from one); None for the other choices."""
    if scaling.source != "sqs" or scaling.pod_identity is None:
        return None
    return {
        "apiVersion": KEDA_API,
        "kind": "TriggerAuthentication",
        "metadata": owner.metadata(),
        "spec": {"podIdentity": dict(scaling.pod_identity)},
    }


def hpa_name(scaled_object_name: str) -> str:
    """The HPA KEDA makes for a ScaledObject (KEDA's default naming)."""
    return f"keda-hpa-{scaled_object_name}"


def targets(obj: Mapping[str, Any], kind: str, name: str, ref_key: str = "scaleTargetRef") -> bool:
    """Whether a ScaledObject or HPA scales this workload."""
    ref = (obj.get("spec") or {}).get(ref_key) or {}
    return bool(ref.get("name") == name and (ref.get("kind") or "Deployment") == kind)


def foreign_scalers(
    scaling: Scaling,
    owner: Owner,
    scaled_objects: Sequence[Mapping[str, Any]],
    hpas: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Scalers of the target the binding does not own ("ScaledObject x", "HorizontalPodAutoscaler
    y"): KEDA's HPA of our own ScaledObject is ours."""
    found: list[str] = []
    for obj in scaled_objects:
        name = str((obj.get("metadata") or {}).get("name"))
        if targets(obj, scaling.target_kind, scaling.target_name) and not owned_by(obj, owner.uid):
            found.append(f"ScaledObject {name}")
        elif name == owner.name and not owned_by(obj, owner.uid):
            found.append(f"ScaledObject {name} (the name this binding's would take)")
    for hpa in hpas:
        name = str((hpa.get("metadata") or {}).get("name"))
        if targets(hpa, scaling.target_kind, scaling.target_name) and name != hpa_name(owner.name):
            found.append(f"HorizontalPodAutoscaler {name}")
    return found


# --- the operator's depth endpoint ------------------------------------------------------------
def depth_document(
    entry: Mapping[str, Any] | None, now: datetime, max_age: float
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for ``GET /bindings/{ns}/{name}/queue`` from the binding's indexed
    status, which every replica holds: each answers the same, so any replica behind the Service
    serves KEDA. 404 for an unknown binding; 503 (KEDA keeps the replicas and retries) while no
    depth is known or the last check is older than ``max_age`` seconds (no leader checking)."""
    if entry is None:
        return 404, {"error": "no such CarrierBinding"}
    status = entry.get("status") or {}
    depth = status.get("queueDepth")
    checked = status.get("lastChecked")
    if not isinstance(depth, Mapping) or not isinstance(checked, str):
        return 503, {"error": "the queue depth is not known: see the binding's QueueReachable"}
    try:
        age = (
            now - datetime.strptime(checked, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        ).total_seconds()
    except ValueError:
        return 503, {"error": f"unreadable lastChecked {checked!r}"}
    if age > max_age:
        return 503, {"error": f"the last queue check is {age:.0f}s old (no leader checking?)"}
    visible, in_flight, delayed = (
        int(depth.get(k) or 0) for k in ("visible", "inFlight", "delayed")
    )
    raw = (entry.get("spec") or {}).get("autoscaling") or {}
    include = not isinstance(raw, Mapping) or raw.get("includeInFlight", True) is not False
    return 200, {
        "visible": visible,
        "inFlight": in_flight,
        "delayed": delayed,
        "value": visible + (in_flight if include else 0),
        "checkedAt": checked,
    }


def check_interval(spec: Mapping[str, Any], default: float) -> float:
    """Seconds between queue reads: KEDA's polling interval when KEDA reads the operator's
    endpoint (a slower check would feed it stale depths), else the operator's interval."""
    scaling = scaling_of(spec)
    if scaling is not None and scaling.source == "operator":
        return min(default, float(scaling.polling_seconds))
    return default
