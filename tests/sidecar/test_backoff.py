"""Failure backoff: min(base x 2^(receives-1), max) with equal jitter, in whole seconds (pure)."""

from __future__ import annotations

import pytest

from carrier_sidecar.backoff import exponential_delay, failure_visibility, retry_after_visibility
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


def _settings(**fields: object) -> Settings:
    return Settings.from_fields({"sqs_queue_name": "q", **fields})


@pytest.mark.parametrize(
    ("backoff", "retry_after", "receives", "low", "high"),
    [
        # Retry-After: 0 never means "at once": the backoff for the receive count, at least 1 s.
        ("exponential", 0, 1, 1, 1),
        ("exponential", 0, 3, 2, 4),
        ("exponential", 0, 6, 16, 32),
        # A longer Retry-After wins over the backoff.
        ("exponential", 120, 3, 120, 120),
        ("exponential", 3, 3, 3, 4),
        # queue backoff: the webhook's number, never under 1 s.
        ("queue", 0, 7, 1, 1),
        ("queue", 5, 7, 5, 5),
        # A backoff base of 0 still keeps the 1 s floor.
        ("exponential-base-0", 0, 4, 1, 1),
    ],
)
def test_retry_after_is_floored_by_the_backoff(
    backoff: str, retry_after: int, receives: int, low: int, high: int
) -> None:
    fields: dict[str, object] = {"retry_backoff": backoff.split("-")[0]}
    if backoff.endswith("base-0"):
        fields["retry_backoff_base"] = 0
    settings = _settings(**fields)
    seen = {retry_after_visibility(settings, retry_after, receives) for _ in range(200)}
    assert min(seen) >= low
    assert max(seen) <= high
