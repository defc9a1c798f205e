"""Go duration syntax, as the Go Carrier's environment uses it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sidecar.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1h2m3s", 3723.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("10ns", 1e-8),
        ("0", 0.0),
        ("30", 30.0),
        ("2.5", 2.5),
        (" 20s ", 20.0),
        ("+5s", 5.0),
    ],
)
def test_parses_go_durations_and_plain_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "abc", "10x", "s", "1m30", "-5s", "1e3s", "5 s", "inf", "nan"]
)
def test_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(60.0, "1m"), (90.0, "90s"), (0.5, "500ms"), (7200.0, "2h"), (0.0, "0s"), (20.0, "20s")],
)
def test_formats_go_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.floats(min_value=0, max_value=43200, allow_nan=False).map(lambda f: round(f, 3)))
def test_format_then_parse_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-9)
