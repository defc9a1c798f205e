"""A binding's status, rendered from what the operator last observed (pure, no I/O).

The reconciler folds what it found — is the spec valid and what does it render to, is the queue
reachable and how deep, which pods use it — into one :class:`Observed` and renders the *whole*
status from it, so no finding can overwrite another's news with a stale copy.

Three conditions, because they answer different questions (docs/operator.md, "Conditions"):
``Valid`` — may pods use this binding (the injector's gate; it depends on the spec only, so no
AWS or network blip can ever turn it False); ``QueueReachable`` — can the *operator's* AWS
identity read the queue (the sidecar uses the pod's identity, which may differ); ``Ready`` —
the summary shown by ``kubectl get cb``: valid and, unless the check is off, reachable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .queues import QueueProbe

READY = "Ready"
QUEUE_REACHABLE = "QueueReachable"
VALID = "Valid"
AUTOSCALING = "Autoscaling"
MAX_POD_NAMES = 20


@dataclass(frozen=True)
class ScalingReport:
    """What the autoscaling step found (``scaling_sync.py``): the ``Autoscaling`` condition and
    ``status.autoscaling``; both None when the binding asks for no autoscaling (removed)."""

    verdict: tuple[str, str, str] | None = None  # (status, reason, message)
    status: dict[str, Any] | None = None


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
    check_off: str | None = None  # why the queue is not read (the check is turned off), if so
    autoscaling: ScalingReport | None = None  # None: not looked at yet (the old condition stands)
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
    except ``queueDepth`` and ``deadLetter``, removed while the queue cannot be read so no
    stale depth shows."""
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
    if obs.autoscaling is not None:  # null erases it (merge patch) once autoscaling is removed
        status["autoscaling"] = obs.autoscaling.status
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
        status["deadLetter"] = dead_letter_status(obs.probe)
    if obs.pods is not None:
        names = sorted(obs.pods)
        status["boundPods"] = len(names)
        status["boundPodNames"] = names[:MAX_POD_NAMES]
    return status


def dead_letter_status(probe: QueueProbe) -> dict[str, Any] | None:
    """``status.deadLetter``: removed (None) while the queue cannot be read, like the depth."""
    if not probe.reachable or probe.dead_letter is None:
        return None
    return probe.dead_letter.status()


def _still_valid(previous: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """Ready and QueueReachable from before a restart, while the first queue check is pending:
    nothing new is known about the queue, so they stand (an InvalidSpec, Pending or
    CheckDisabled verdict does not: the spec was just found valid, and the check is on)."""
    kinds = {c.get("type"): c for c in previous}
    if READY not in kinds or QUEUE_REACHABLE not in kinds:
        return None
    if kinds[QUEUE_REACHABLE].get("reason") in {"InvalidSpec", "Pending", "CheckDisabled"}:
        return None
    return [dict(kinds[READY]), dict(kinds[QUEUE_REACHABLE])]


Verdict = tuple[str, str, str]  # (status, reason, message)


def _verdicts(obs: Observed) -> tuple[Verdict, Verdict, Verdict]:
    """(Ready, QueueReachable, Valid) from what was observed."""
    pods = len(obs.pods or ())
    if obs.spec_error is not None:
        return (
            ("False", "InvalidSpec", obs.spec_error),
            ("Unknown", "InvalidSpec", "not checked: the spec is invalid"),
            ("False", "InvalidSpec", obs.spec_error),
        )
    if obs.settings_hash is None:
        valid: Verdict = ("Unknown", "Pending", "the spec has not been checked yet")
    else:
        valid = (
            "True",
            "SpecValid",
            f"the spec is valid and renders {obs.env_count or 0} sidecar variable(s): "
            "pods may use this binding",
        )
    if obs.check_off is not None:
        unchecked: Verdict = (
            "Unknown",
            "CheckDisabled",
            f"the queue check is off: {obs.check_off}",
        )
        if valid[0] != "True":
            return valid, unchecked, valid
        return (
            ("True", "Ready", f"spec valid, queue not checked, {pods} pod(s) bound"),
            unchecked,
            valid,
        )
    if obs.probe is None:
        return (
            ("Unknown", "Pending", "waiting for the first queue check"),
            ("Unknown", "Pending", "the queue has not been read yet"),
            valid,
        )
    if not obs.probe.reachable:
        return (
            (
                "False",
                obs.probe.reason,
                f"the operator cannot read the queue: "
                f"{obs.probe.message} (pods are still admitted while the spec is Valid)",
            ),
            ("False", obs.probe.reason, obs.probe.message),
            valid,
        )
    return (
        ("True", "Ready", f"spec valid, queue reachable, {pods} pod(s) bound"),
        ("True", obs.probe.reason, obs.probe.message),
        valid,
    )


def _conditions(obs: Observed, now: str) -> list[dict[str, Any]]:
    ready, reachable, valid = _verdicts(obs)
    common: dict[str, Any] = {"generation": obs.generation, "previous": obs.conditions, "now": now}
    made_valid = _condition(VALID, *valid, **common)
    if obs.spec_error is None and obs.probe is None and obs.check_off is None:
        kept = _still_valid(obs.conditions)
        if kept is not None:
            obs.conditions = [*kept, made_valid, *_autoscaling_condition(obs, common)]
            return obs.conditions
    made = [
        _condition(READY, *ready, **common),
        _condition(QUEUE_REACHABLE, *reachable, **common),
        made_valid,
        *_autoscaling_condition(obs, common),
    ]
    obs.conditions = made
    return made


def _autoscaling_condition(obs: Observed, common: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``Autoscaling`` condition: new, the one written before (not looked at yet), or none."""
    if obs.autoscaling is None:
        return [dict(c) for c in common["previous"] if c.get("type") == AUTOSCALING]
    if obs.autoscaling.verdict is None:
        return []
    return [_condition(AUTOSCALING, *obs.autoscaling.verdict, **common)]


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
