"""A binding's status, rendered from what the operator last observed (pure, no I/O).

Two writers observe a binding — the change handlers (is the spec valid, what does it render to)
and the queue checker (is the queue reachable, how deep, which pods use it). Both fold their
findings into one :class:`Observed` and render the *whole* status from it, so neither can
overwrite the other's news with a stale copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .queues import QueueProbe

READY = "Ready"
QUEUE_REACHABLE = "QueueReachable"
MAX_POD_NAMES = 20


@dataclass
class Observed:
    """What the operator knows about one binding; ``None`` means not known yet."""

    generation: int | None = None
    spec_error: str | None = None
    settings_hash: str | None = None
    sidecar_hash: str | None = None
    env_count: int | None = None
    queue_label: str | None = None
    webhook: str | None = None
    probe: QueueProbe | None = None
    checked_at: str | None = None
    pods: tuple[str, ...] | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)

    def seed(self, status: Mapping[str, Any]) -> None:
        """Start from a status written before (an operator restart keeps hashes and times)."""
        self.settings_hash = self.settings_hash or _str(status.get("settingsHash"))
        self.sidecar_hash = self.sidecar_hash or _str(status.get("sidecarHash"))
        if not self.conditions:
            self.conditions = [
                dict(c) for c in status.get("conditions") or [] if isinstance(c, Mapping)
            ]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(obs: Observed, now: str) -> dict[str, Any]:
    """The status to merge-patch. Keys whose value is unknown are left out (never erased),
    except ``queueDepth``, removed while the queue cannot be read so no stale depth shows."""
    status: dict[str, Any] = {"conditions": _conditions(obs, now)}
    optional = {
        "observedGeneration": obs.generation,
        "settingsHash": obs.settings_hash,
        "sidecarHash": obs.sidecar_hash,
        "renderedEnvCount": obs.env_count,
        "queue": obs.queue_label,
        "webhook": obs.webhook,
        "lastChecked": obs.checked_at,
    }
    status.update({key: value for key, value in optional.items() if value is not None})
    if obs.probe is not None:
        status["queueUrl"] = obs.probe.url
        status["queueDepth"] = (
            {
                "visible": obs.probe.visible,
                "inFlight": obs.probe.in_flight,
                "delayed": obs.probe.delayed,
            }
            if obs.probe.reachable
            else None
        )
        if status["queueUrl"] is None:
            del status["queueUrl"]
    if obs.pods is not None:
        names = sorted(obs.pods)
        status["boundPods"] = len(names)
        status["boundPodNames"] = names[:MAX_POD_NAMES]
    return status


def _still_valid(previous: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """Conditions from before a restart, while the first queue check is pending: nothing new is
    known, so they stand (an InvalidSpec verdict does not: the spec was just found valid)."""
    kinds = {c.get("type"): c for c in previous}
    if READY not in kinds or QUEUE_REACHABLE not in kinds:
        return None
    if kinds[QUEUE_REACHABLE].get("reason") in {"InvalidSpec", "Pending"}:
        return None
    return [dict(kinds[READY]), dict(kinds[QUEUE_REACHABLE])]


def _conditions(obs: Observed, now: str) -> list[dict[str, Any]]:
    if obs.spec_error is None and obs.probe is None:
        kept = _still_valid(obs.conditions)
        if kept is not None:
            obs.conditions = kept
            return kept
    if obs.spec_error is not None:
        reachable = ("Unknown", "InvalidSpec", "not checked: the spec is invalid")
        ready = ("False", "InvalidSpec", obs.spec_error)
    elif obs.probe is None:
        reachable = ("Unknown", "Pending", "the queue has not been read yet")
        ready = ("Unknown", "Pending", "waiting for the first queue check")
    elif not obs.probe.reachable:
        reachable = ("False", obs.probe.reason, obs.probe.message)
        ready = ("False", obs.probe.reason, f"the queue cannot be read: {obs.probe.message}")
    else:
        reachable = ("True", obs.probe.reason, obs.probe.message)
        pods = len(obs.pods or ())
        ready = ("True", "Ready", f"spec valid, queue reachable, {pods} pod(s) bound")
    made = [
        _condition(READY, *ready, generation=obs.generation, previous=obs.conditions, now=now),
        _condition(
            QUEUE_REACHABLE, *reachable, generation=obs.generation, previous=obs.conditions, now=now
        ),
    ]
    obs.conditions = made
    return made


def _condition(
    kind: str,
    status: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    old = next((c for c in previous if c.get("type") == kind), None)
    since = now
    if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
        since = str(old["lastTransitionTime"])
    made: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        made["observedGeneration"] = generation
    return made


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
