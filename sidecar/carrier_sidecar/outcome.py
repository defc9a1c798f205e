"""What a webhook response means for its message: pure, so every rule has a table test.

``classify(status, headers, now)`` is the whole delivery contract on the HTTP side:
any 2xx deletes, 429/503 with a usable ``Retry-After`` come back after that time, the rest fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

from .settings import SQS_MAX_VISIBILITY

RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_LOCATION = 200  # characters of a redirect's Location kept in the failure reason


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int


@dataclass(frozen=True, slots=True)
class RetryAt:
    """The webhook asked to see the message again after ``delay`` whole seconds."""

    delay: int
    status: int


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    status: int | None = None
    timeout: bool = False


Outcome = Delivered | RetryAt | Failed
OutcomeKind = Literal["success", "retry_after", "failure", "timeout"]


def kind(outcome: Outcome) -> OutcomeKind:
    """The metrics label of an outcome."""
    if isinstance(outcome, Delivered):
        return "success"
    if isinstance(outcome, RetryAt):
        return "retry_after"
    return "timeout" if outcome.timeout else "failure"


def classify(status: int, headers: Mapping[str, str], now: float) -> Outcome:
    """Map an HTTP answer to an outcome; ``now`` (epoch seconds) resolves an HTTP-date."""
    if 200 <= status < 300:
        return Delivered(status)
    if status in RETRY_AFTER_STATUSES:
        value = headers.get("Retry-After")
        if value is not None:
            delay = retry_after_seconds(value, now)
            if delay is not None:
                return RetryAt(delay, status)
            return Failed(f"HTTP {status} with an unreadable Retry-After {value!r}", status)
    if 300 <= status < 400:
        # Redirects are not followed; where it pointed shows the usual mistakes at once
        # (http→https, a missing trailing slash, a moved route).
        location = headers.get("Location")
        if location is not None:
            return Failed(f"HTTP {status} redirect to {location[:MAX_LOCATION]!r}", status)
    return Failed(f"HTTP {status}", status)


def retry_after_seconds(value: str, now: float) -> int | None:
    """``Retry-After`` as delta-seconds or an HTTP-date (RFC 9110), clamped to 0..12 h; None if unreadable."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Past 12 h the exact number does not matter (and int() refuses over 4300 digits).
        return _clamp(int(text)) if len(text) <= 12 else int(SQS_MAX_VISIBILITY)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime form: RFC 9110 dates are always GMT
        when = when.replace(tzinfo=UTC)
    try:
        return _clamp(math.ceil(when.timestamp() - now))
    except (OverflowError, ValueError, OSError):
        return None


def _clamp(seconds: int) -> int:
    return max(0, min(int(SQS_MAX_VISIBILITY), seconds))
