"""Opt-in rollout: restart the workloads whose pods use a binding when its sidecar changes.

Workloads are found by their *pod template's* binding label (not by running pods), so a
Deployment scaled to zero is updated too. The patch is the same one ``kubectl rollout restart``
makes (an annotation on the template), plus the sidecar hash it rolls to: a workload already
carrying that hash is skipped, which makes a repeated rollout a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .binding import BINDING_LABEL, GROUP
from .kubeapi import MERGE_PATCH, KubeAPI
from .leader import Leadership, SoleReplica, fence

RESTARTED_AT = f"{GROUP}/restartedAt"
SIDECAR_HASH = f"{GROUP}/sidecarHash"
WORKLOADS = (("deployments", "Deployment"), ("statefulsets", "StatefulSet"))


@dataclass
class Rollout:
    restarted: list[str] = field(default_factory=list)  # "Deployment/name"
    current: list[str] = field(default_factory=list)  # already on this hash


def uses_binding(workload: Mapping[str, Any], binding_name: str) -> bool:
    labels = _template_meta(workload).get("labels") or {}
    return bool(labels.get(BINDING_LABEL) == binding_name)


def is_current(workload: Mapping[str, Any], sidecar_hash: str) -> bool:
    annotations = _template_meta(workload).get("annotations") or {}
    return bool(annotations.get(SIDECAR_HASH) == sidecar_hash)


def restart_patch(sidecar_hash: str, now: str) -> dict[str, Any]:
    annotations = {RESTARTED_AT: now, SIDECAR_HASH: sidecar_hash}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


async def roll_out(
    api: KubeAPI,
    namespace: str,
    binding_name: str,
    sidecar_hash: str,
    now: str,
    leadership: Leadership | None = None,
) -> Rollout:
    """Patch every Deployment/StatefulSet in ``namespace`` whose template uses the binding;
    leadership is checked before each patch (:class:`~.leader.NotLeader` stops the rollout)."""
    leadership = leadership or SoleReplica()
    result = Rollout()
    for plural, kind in WORKLOADS:
        base = f"/apis/apps/v1/namespaces/{namespace}/{plural}"
        for workload in await api.list_all(base):
            if not uses_binding(workload, binding_name):
                continue
            name = str((workload.get("metadata") or {}).get("name"))
            if is_current(workload, sidecar_hash):
                result.current.append(f"{kind}/{name}")
                continue
            fence(leadership)
            await api.request(
                "PATCH",
                f"{base}/{name}",
                restart_patch(sidecar_hash, now),
                content_type=MERGE_PATCH,
            )
            result.restarted.append(f"{kind}/{name}")
    return result


def _template_meta(workload: Mapping[str, Any]) -> Mapping[str, Any]:
    template = (workload.get("spec") or {}).get("template") or {}
    meta: Mapping[str, Any] = template.get("metadata") or {}
    return meta
