"""Failure backoff: min(base x 2^(receives-1), max) with equal jitter, in whole seconds (pure)."""

from __future__ import annotations

import pytest

from carrier_sidecar.backoff import exponential_delay, failure_visibility
from carrier_sidecar.settings import Settings


@pytest.mark.parametrize(
    ("receives", "low", "high"),
    [(1, 1, 1), (2, 1, 2), (3, 2, 4), (4, 4, 8), (5, 8, 16), (11, 450, 900), (500, 450, 900)],
)
def test_bounds(receives: int, low: int, high: int) -> None:
    assert exponential_delay(receives, 1.0, 900.0, rand=lambda: 0.0) == low
    assert exponential_delay(receives, 1.0, 900.0, rand=lambda: 0.999999) == high


def test_never_beyond_sqs_limit() -> None:
    assert exponential_delay(40, 43200.0, 43200.0, rand=lambda: 0.999999) == 43200


def test_queue_mode_leaves_the_message_alone() -> None:
    settings = Settings.from_fields({"sqs_queue_name": "q", "retry_backoff": "queue"})
    assert failure_visibility(settings, 3) is None


def test_exponential_is_the_default() -> None:
    settings = Settings.from_fields({"sqs_queue_name": "q"})
    assert settings.retry_backoff == "exponential"
    assert 2 <= (failure_visibility(settings, 3) or 0) <= 4
