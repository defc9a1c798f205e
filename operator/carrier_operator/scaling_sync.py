"""The autoscaling half of reconciling one binding: keep its KEDA ScaledObject as the spec says
(leader only, every write fenced).

Level-triggered like ``spec_sync.py``: each check compares what KEDA objects exist with what
``spec.autoscaling`` renders (``autoscaling.py``) and creates, patches or deletes only the ones
the binding owns (controller ownerReference, so the API server's garbage collector deletes them
with the binding). Anything it does not own — an HPA or ScaledObject already scaling the target,
a name taken — is reported in the ``Autoscaling`` condition and never overwritten. Without KEDA
(its API group not served) or without the chart's rights, it says so instead of failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carrier_sidecar.settings import Settings

from .autoscaling import (
    KEDA_API,
    KEDA_INSTALL,
    Owner,
    Scaling,
    foreign_scalers,
    hpa_name,
    owned_by,
    scaled_object,
    scaling_of,
    trigger_authentication,
)
from .kubeapi import MERGE_PATCH, KubeAPI, KubeAPIError
from .leader import Leadership, fence
from .status import AUTOSCALING, Observed, ScalingReport
from .status_writer import Key

logger = logging.getLogger(__name__)

DISCOVERY_TTL = 30.0  # seconds a "KEDA is (not) installed" answer is reused
WORKLOAD_PLURALS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
DISABLED = (
    "spec.autoscaling is set, but this operator may not manage KEDA objects (chart value "
    "autoscaling.enabled=false, so no RBAC for them): enable it, or remove spec.autoscaling"
)


def _keda(namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/apis/{KEDA_API}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def _false(reason: str, message: str, status: dict[str, Any] | None = None) -> ScalingReport:
    return ScalingReport(("False", reason, message), status)


@dataclass
class ScalingSync:
    api: KubeAPI
    leadership: Leadership
    enabled: bool
    """False when the chart grants no rights on KEDA objects (``autoscaling.enabled``)."""
    endpoint_base: str
    """Where KEDA reaches the operator's depth endpoint (``source: operator``)."""
    _installed: tuple[float, bool] | None = field(default=None, init=False)

    async def sync(
        self, key: Key, entry: Mapping[str, Any], settings: Settings, obs: Observed
    ) -> None:
        """Fold the binding's autoscaling into ``obs.autoscaling`` (a valid spec only).

        Raises :class:`~.leader.NotLeader` if leadership was lost before a write."""
        spec: Mapping[str, Any] = entry.get("spec") or {}
        if not entry.get("uid"):  # an ownerReference needs it; kopf's index always has it
            return
        owner = Owner(key[0], key[1], str(entry["uid"]))
        scaling = scaling_of(spec)
        try:
            if scaling is None:
                if _was_managed(obs):
                    if self.enabled and await self._keda_installed():
                        await self._remove(owner)
                    obs.autoscaling = ScalingReport()
                return
            obs.autoscaling = await self._apply(owner, scaling, settings, obs)
        except KubeAPIError as exc:
            logger.warning(
                "cannot manage KEDA objects",
                extra={"namespace": key[0], "binding": key[1], "error": str(exc)},
            )
            previous = obs.autoscaling.status if obs.autoscaling is not None else None
            obs.autoscaling = _false(
                "KubernetesAPIError", f"cannot manage KEDA objects: {exc}", previous
            )

    async def _keda_installed(self) -> bool:
        now = time.monotonic()
        if self._installed is None or now - self._installed[0] > DISCOVERY_TTL:
            found = await self.api.get(f"/apis/{KEDA_API}")
            served = {r.get("name") for r in (found or {}).get("resources") or ()}
            self._installed = (now, "scaledobjects" in served)
        return self._installed[1]

    async def _apply(
        self, owner: Owner, scaling: Scaling, settings: Settings, obs: Observed
    ) -> ScalingReport:
        if not self.enabled:
            return _false("AutoscalingDisabled", DISABLED)
        if not await self._keda_installed():
            return _false(
                "KEDANotInstalled",
                f"the {KEDA_API} API (ScaledObject) is not served in this cluster: {KEDA_INSTALL}",
            )
        namespace = owner.namespace
        target = await self.api.get(
            f"/apis/apps/v1/namespaces/{namespace}/"
            f"{WORKLOAD_PLURALS[scaling.target_kind]}/{scaling.target_name}"
        )
        if target is None:
            return _false(
                "TargetNotFound",
                f"{scaling.target} (spec.autoscaling.target) does not exist in namespace "
                f"{namespace}: create it or fix the name",
            )
        scaled_objects = await self.api.list_all(_keda(namespace, "scaledobjects"))
        hpas = await self.api.list_all(
            f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"
        )
        foreign = foreign_scalers(scaling, owner, scaled_objects, hpas)
        if foreign:
            return _false(
                "ForeignScaler",
                f"{scaling.target} is already scaled by {', '.join(foreign)}, which this binding "
                "does not own: nothing was overwritten; delete that scaler or remove "
                "spec.autoscaling",
            )
        queue_url = settings.sqs_queue_url or (obs.probe.url if obs.probe else None)
        if scaling.source == "sqs" and not queue_url:
            return _false(
                "QueueURLUnknown",
                "KEDA's aws-sqs-queue scaler needs the queue's URL: set spec.queue.url, or let "
                "the operator resolve spec.queue.name (queueCheck) and wait for its first check",
            )
        if scaling.authentication_ref is not None:
            path = _keda(namespace, "triggerauthentications", scaling.authentication_ref)
            if await self.api.get(path) is None:
                return _false(
                    "AuthenticationNotFound",
                    f"TriggerAuthentication {scaling.authentication_ref} "
                    "(spec.autoscaling.authenticationRef) does not exist in namespace "
                    f"{namespace}",
                )
        conflict = await self._converge_auth(owner, scaling)
        if conflict is not None:
            return conflict
        desired = scaled_object(scaling, settings, queue_url or "", self.endpoint_base, owner)
        existing = next(
            (o for o in scaled_objects if (o.get("metadata") or {}).get("name") == owner.name),
            None,
        )
        now = await self._converge(_keda(namespace, "scaledobjects"), owner, desired, existing)
        return await self._report(owner, scaling, target, now)

    async def _converge_auth(self, owner: Owner, scaling: Scaling) -> ScalingReport | None:
        """The TriggerAuthentication ``podIdentity`` needs, made or kept; ours removed otherwise."""
        desired = trigger_authentication(scaling, owner)
        path = _keda(owner.namespace, "triggerauthentications", owner.name)
        current = await self.api.get(path)
        if desired is None:
            if current is not None and owned_by(current, owner.uid):
                fence(self.leadership)
                await self.api.request("DELETE", path)
            return None
        if current is not None and not owned_by(current, owner.uid):
            return _false(
                "ForeignScaler",
                f"TriggerAuthentication {owner.name} exists and this binding does not own it: "
                "nothing was overwritten; rename or delete it, or use authenticationRef",
            )
        await self._converge(
            _keda(owner.namespace, "triggerauthentications"), owner, desired, current
        )
        return None

    async def _converge(
        self,
        collection: str,
        owner: Owner,
        desired: dict[str, Any],
        current: Mapping[str, Any] | None,
    ) -> Mapping[str, Any]:
        """Create ``desired``, or patch ``current`` (ours) to it if it differs; the object now."""
        if current is None:
            fence(self.leadership)
            made = await self.api.request("POST", collection, desired)
            logger.info(
                "KEDA object created",
                extra={
                    "kind": desired["kind"],
                    "namespace": owner.namespace,
                    "binding": owner.name,
                },
            )
            return made or desired
        meta = desired["metadata"]
        if current.get("spec") == desired["spec"] and _has_meta(current, meta):
            return current
        patch = {
            "metadata": {"labels": meta["labels"], "ownerReferences": meta["ownerReferences"]},
            "spec": _replacing(current.get("spec") or {}, desired["spec"]),
        }
        fence(self.leadership)
        patched = await self.api.request(
            "PATCH", f"{collection}/{owner.name}", patch, content_type=MERGE_PATCH
        )
        logger.info(
            "KEDA object updated",
            extra={"kind": desired["kind"], "namespace": owner.namespace, "binding": owner.name},
        )
        return patched or desired

    async def _remove(self, owner: Owner) -> None:
        """Delete the binding's own ScaledObject and TriggerAuthentication, if there."""
        for plural in ("scaledobjects", "triggerauthentications"):
            path = _keda(owner.namespace, plural, owner.name)
            current = await self.api.get(path)
            if current is not None and owned_by(current, owner.uid):
                fence(self.leadership)
                await self.api.request("DELETE", path)
                logger.info(
                    "KEDA object deleted",
                    extra={"kind": plural, "namespace": owner.namespace, "binding": owner.name},
                )

    async def _report(
        self,
        owner: Owner,
        scaling: Scaling,
        target: Mapping[str, Any],
        current: Mapping[str, Any],
    ) -> ScalingReport:
        status: dict[str, Any] = {"scaledObject": owner.name}
        replicas = (target.get("status") or {}).get("replicas")
        status["currentReplicas"] = int(replicas) if isinstance(replicas, int) else 0
        hpa = await self.api.get(
            f"/apis/autoscaling/v2/namespaces/{owner.namespace}/horizontalpodautoscalers/"
            f"{hpa_name(owner.name)}"
        )
        desired = ((hpa or {}).get("status") or {}).get("desiredReplicas")
        if isinstance(desired, int):
            status["desiredReplicas"] = desired
        ready = next(
            (
                c
                for c in (current.get("status") or {}).get("conditions") or ()
                if isinstance(c, Mapping) and c.get("type") == "Ready"
            ),
            None,
        )
        where = (
            f"ScaledObject {owner.name} scales {scaling.target} between "
            f"{scaling.min_replicas} and {scaling.max_replicas} replicas "
            f"({scaling.messages_per_replica} messages each, trigger "
            f"{'metrics-api (operator)' if scaling.source == 'operator' else 'aws-sqs-queue'})"
        )
        if ready is not None and ready.get("status") == "False":
            return _false(
                "ScaledObjectNotReady",
                f"{where}; KEDA: {ready.get('message') or ready.get('reason')}",
                status,
            )
        said = "KEDA reports it Ready" if ready is not None else "KEDA has not reported on it yet"
        return ScalingReport(
            ("True", "ScaledObjectReady" if ready else "ScaledObjectApplied", f"{where}; {said}"),
            status,
        )


def _was_managed(obs: Observed) -> bool:
    """Whether the binding had autoscaling (this run, or in the status written before)."""
    if obs.autoscaling is not None:
        return obs.autoscaling.status is not None or obs.autoscaling.verdict is not None
    return any(c.get("type") == AUTOSCALING for c in obs.conditions)


def _has_meta(current: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    have = current.get("metadata") or {}
    labels = have.get("labels") or {}
    return all(labels.get(k) == v for k, v in meta["labels"].items()) and (
        have.get("ownerReferences") == meta["ownerReferences"]
    )


def _replacing(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``current`` into ``desired`` (keys gone are set to null)."""
    patch: dict[str, Any] = {key: None for key in current if key not in desired}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            patch[key] = _replacing(old, value)
        else:
            patch[key] = value
    return patch
