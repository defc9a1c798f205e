"""The spec half of reconciling one binding: validate, render, roll out, announce (leader only).

Level-triggered, controller-runtime style: it compares the spec as indexed now with what the
operator knows (``Observed``, seeded from the status written before) and acts on the difference.
Nothing is remembered on the object but the status, so a new leader — after a failover or a
restart — simply carries on: a rollout compares the rendered ``sidecarHash`` with the status's
and skips workloads already on the new hash, so none is annotated twice; Events are posted only
when the verdict or the rendered sidecar changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carrier_sidecar.settings import Settings

from .binding import BindingError, render_env, settings_hash, sidecar_hash
from .config import OperatorSettings
from .events import (
    INVALID_SPEC,
    ROLLOUT,
    ROLLOUT_FAILED,
    SETTINGS_RENDERED,
    SPEC_VALID,
    EventPoster,
    Involved,
)
from .kubeapi import KubeAPI, KubeAPIError
from .leader import Leadership
from .metrics import OperatorMetrics
from .rollout import roll_out
from .status import Observed, now_iso
from .status_writer import Key
from .validation import check_binding

logger = logging.getLogger(__name__)


def check_validity(spec: Mapping[str, Any], namespace: str, config: OperatorSettings) -> Settings:
    """The one decision "may pods use this spec" (the ``Valid`` condition, the admission gate):
    the schema and the operator's policy rules, the same as both webhooks apply. Raises
    :class:`BindingError` with a ``spec.field: what is wrong`` message if not."""
    return check_binding(spec, namespace, config)


def display(spec: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The queue and webhook as the printer columns show them (even for an invalid spec)."""
    queue = spec.get("queue") or {}
    webhook = spec.get("webhook") or {}
    queue_label = queue.get("name") or queue.get("url")
    if webhook.get("url"):
        target = str(webhook["url"])
    elif webhook.get("port") is not None:
        target = f":{webhook['port']}{webhook.get('path') or '/'}"
    else:
        target = None
    return (str(queue_label) if queue_label else None), target


def queue_check_off(spec: Mapping[str, Any], operator_wide: bool) -> str | None:
    """Why the operator must not read this binding's queue, or None to read it."""
    if not operator_wide:
        return "CARRIER_OPERATOR_QUEUE_CHECK=false"
    if spec.get("queueCheck") is False:
        return "spec.queueCheck is false"
    return None


ROLLOUT_DISABLED = (
    "rolloutOnChange is set, but this operator may not restart workloads (chart value "
    "rollout.enabled=false, so no RBAC to patch Deployments/StatefulSets): restart them "
    "yourself (kubectl rollout restart) or enable rollout"
)


@dataclass
class SpecSync:
    api: KubeAPI
    events: EventPoster
    leadership: Leadership
    rollout_enabled: bool = True
    """False when the chart grants no rights to patch workloads (``rollout.enabled``)."""
    config: OperatorSettings = field(default_factory=OperatorSettings)
    """The policy a binding is checked against (allowRemoteWebhooks, ...)."""
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)

    async def sync(self, key: Key, entry: Mapping[str, Any], obs: Observed) -> Settings | None:
        """Fold the indexed spec into ``obs``; the sidecar settings if the spec is valid.

        Raises :class:`~.leader.NotLeader` if leadership was lost before a write."""
        spec: Mapping[str, Any] = entry.get("spec") or {}
        generation = entry.get("generation")
        obs.generation = int(generation) if generation is not None else obs.generation
        obs.queue_label, obs.webhook = display(spec)
        about = Involved(key[0], key[1], entry.get("uid"))
        try:
            settings = check_validity(spec, key[0], self.config)
        except BindingError as exc:
            message = str(exc)
            if obs.spec_error != message:
                await self.events.warning(about, INVALID_SPEC, message)
            obs.spec_error, obs.probe = message, None
            return None
        env = render_env(spec)
        new_hash = sidecar_hash(spec)
        old_hash = obs.sidecar_hash
        rolls = old_hash is not None and old_hash != new_hash and spec.get("rolloutOnChange")
        if rolls and not self.rollout_enabled:
            await self.events.warning(about, ROLLOUT_FAILED, ROLLOUT_DISABLED)
        elif rolls and not await self._roll_out(about, new_hash):
            return settings  # retried at the next check: the status keeps the old hash
        if obs.spec_error is not None:
            await self.events.normal(about, SPEC_VALID, "the spec is valid again")
        if old_hash != new_hash:
            await self.events.normal(
                about,
                SETTINGS_RENDERED,
                f"sidecar settings {settings_hash(env)} ({len(env)} variables), sidecar {new_hash}",
            )
        obs.spec_error = None
        obs.settings_hash = settings_hash(env)
        obs.sidecar_hash = new_hash
        obs.env_count = len(env)
        return settings

    async def _roll_out(self, about: Involved, new_hash: str) -> bool:
        try:
            done = await roll_out(
                self.api, about.namespace, about.name, new_hash, now_iso(), self.leadership
            )
        except KubeAPIError as exc:
            self.metrics.reconcile_error("rollout")
            message = f"cannot restart the workloads using this binding: {exc}"
            await self.events.warning(about, ROLLOUT_FAILED, message)
            logger.warning(
                "rollout failed",
                extra={"namespace": about.namespace, "binding": about.name, "error": message},
            )
            return False
        if done.restarted:
            await self.events.normal(
                about, ROLLOUT, f"restarted {', '.join(done.restarted)} for sidecar {new_hash}"
            )
        logger.info(
            "rollout done",
            extra={
                "namespace": about.namespace,
                "binding": about.name,
                "sidecar_hash": new_hash,
                "restarted": done.restarted,
                "current": done.current,
            },
        )
        return True
