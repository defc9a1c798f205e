"""How long a failed message stays invisible before its next attempt: pure.

``exponential`` spaces retries of a failing message (1 s, 2 s, 4 s ... up to the max), so a
webhook that is down is not hammered at a fixed pace, and a poison message reaches the queue's
dead-letter queue (its redrive ``maxReceiveCount``) after a bounded, growing series of attempts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from .settings import SQS_MAX_VISIBILITY, Settings


def exponential_delay(
    receive_count: int,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> int:
    """min(base x 2^(receives-1), cap) with "equal jitter" (half fixed, half random), whole seconds.

    The fixed half keeps the growth honest; the random half spreads a burst of failures so they
    do not all come back in the same second.
    """
    jittered = equal_jitter(doubling(base, cap, receive_count - 1), rand)
    return max(0, min(int(SQS_MAX_VISIBILITY), math.ceil(jittered)))


def doubling(base: float, cap: float, doublings: int) -> float:
    """``min(base x 2^doublings, cap)``, without overflow for any count."""
    doublings = max(0, doublings)
    return cap if doublings >= 64 else min(base * (2.0**doublings), cap)


def equal_jitter(ceiling: float, rand: Callable[[], float] = random.random) -> float:
    """A pause in ``[ceiling/2, ceiling]``: the one jitter of every retry in the sidecar."""
    return ceiling / 2 + rand() * ceiling / 2


def failure_visibility(settings: Settings, receive_count: int) -> int | None:
    """The visibility to set after a failure, or None to leave the message to the queue."""
    if settings.retry_backoff == "queue":
        return None
    return exponential_delay(receive_count, settings.retry_backoff_base, settings.retry_backoff_max)


RETRY_AFTER_FLOOR = 1  # seconds: a rate limiter's "0" must not become a hot loop


def retry_after_visibility(settings: Settings, retry_after: int, receive_count: int) -> int:
    """The visibility after a 429/503 with ``Retry-After``: the larger of what the webhook asked
    and the failure backoff for this receive count, and never under 1 s.

    Rate limiters answer ``Retry-After: 0`` when their window resets within the second; obeyed
    literally, that re-POSTs at once and burns receive counts until the message is dead-lettered
    although nothing is wrong with it. A longer Retry-After still wins.
    """
    backoff = failure_visibility(settings, receive_count) or 0
    return max(retry_after, backoff, RETRY_AFTER_FLOOR)
