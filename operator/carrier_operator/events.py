"""Kubernetes Events about bindings: the reasons users can filter on, posted by the leader only.

Posted through our own API client rather than kopf's poster (a background queue), so that the
leadership fence is checked immediately before each POST, and only when something changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .binding import GROUP, KIND, VERSION
from .kubeapi import KubeAPI, KubeAPIError
from .leader import Leadership, fence
from .status import now_iso

logger = logging.getLogger(__name__)

INVALID_SPEC = "InvalidSpec"
SPEC_VALID = "SpecValid"
SETTINGS_RENDERED = "SettingsRendered"
ROLLOUT = "RolloutRestarted"
ROLLOUT_FAILED = "RolloutFailed"
SCHEDULE_SEND_FAILED = "ScheduleSendFailed"
DEAD_LETTERS_RISING = "DeadLettersRising"  # Warning: the queue's dead-letter queue grew
COMPONENT = "carrier-operator"


@dataclass(frozen=True)
class Involved:
    """The binding an Event is about."""

    namespace: str
    name: str
    uid: str | None = None


class EventPoster:
    def __init__(self, api: KubeAPI, leadership: Leadership, instance: str) -> None:
        self.api = api
        self.leadership = leadership
        self.instance = instance

    async def normal(self, about: Involved, reason: str, message: str) -> None:
        await self.post(about, "Normal", reason, message)

    async def warning(self, about: Involved, reason: str, message: str) -> None:
        await self.post(about, "Warning", reason, message)

    async def post(self, about: Involved, kind: str, reason: str, message: str) -> None:
        """POST a core/v1 Event; API failures are logged (an Event is never worth a retry)."""
        now = now_iso()
        involved = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "namespace": about.namespace,
            "name": about.name,
        }
        if about.uid:
            involved["uid"] = about.uid
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{about.name}.", "namespace": about.namespace},
            "involvedObject": involved,
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        fence(self.leadership)
        try:
            await self.api.request("POST", f"/api/v1/namespaces/{about.namespace}/events", event)
        except KubeAPIError as exc:
            logger.warning(
                "cannot post event",
                extra={
                    "namespace": about.namespace,
                    "binding": about.name,
                    "reason": reason,
                    "error": str(exc),
                },
            )
