"""Kubernetes Events about bindings: the reasons users can filter on, posted through kopf.

kopf's own per-handler "succeeded" events are turned off (posting level WARNING, see
``__main__``); these are posted regardless of that level, only when something changed.
"""

from __future__ import annotations

from typing import Any

import kopf

INVALID_SPEC = "InvalidSpec"
SPEC_VALID = "SpecValid"
SETTINGS_RENDERED = "SettingsRendered"
ROLLOUT = "RolloutRestarted"
ROLLOUT_FAILED = "RolloutFailed"


def normal(body: Any, reason: str, message: str) -> None:
    kopf.event(body, type="Normal", reason=reason, message=message)


def warning(body: Any, reason: str, message: str) -> None:
    kopf.event(body, type="Warning", reason=reason, message=message)
