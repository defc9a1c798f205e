"""Webhook answers fuzzed through the pure outcome function: the documented outcome, never a crash.

Contract (issue 2, README): any 2xx deletes; 429/503 with ``Retry-After`` as delta-seconds or an
HTTP-date come back after that time clamped to 0..43200 s; everything else (other statuses,
unreadable or negative ``Retry-After``) is a failure that leaves the message in the queue.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from email.utils import format_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from carrier_sidecar.outcome import Delivered, Failed, RetryAt, classify

MAX_VISIBILITY = 43200
NOW = time.time()

statuses = st.one_of(st.integers(100, 599), st.integers(0, 10**4), st.sampled_from([429, 503]))
_dates = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
retry_after = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.integers(0, 10**30).map(lambda n: f" {n} "),
    st.floats().map(str),
    _dates.map(lambda d: format_datetime(d, usegmt=True)),
    _dates.map(lambda d: d.strftime("%A, %d-%b-%y %H:%M:%S GMT")),  # RFC 850
    _dates.map(lambda d: d.strftime("%a %b %d %H:%M:%S %Y")),  # asctime
    st.sampled_from(["", " ", "soon", "1e3", "0x10", "½", "²", "١٢", "1_000", "Mon, 32 Foo 2020"]),
    st.text(max_size=60),
    st.text(max_size=10_000).map(lambda t: t * 3),  # huge
    st.integers(4000, 20_000).map(lambda n: "9" * n),  # past int()'s 4300-digit limit
)


def _digits(value: str) -> bool:
    text = value.strip()
    return text.isascii() and text.isdigit()


@given(status=statuses, value=st.one_of(st.none(), retry_after))
@settings(max_examples=2000, deadline=None)
def test_every_answer_has_the_documented_outcome(status: int, value: str | None) -> None:
    headers = {} if value is None else {"Retry-After": value}
    outcome = classify(status, headers, NOW)
    if 200 <= status < 300:
        assert outcome == Delivered(status)
    elif status not in (429, 503) or value is None:
        assert isinstance(outcome, Failed), outcome
        assert outcome.status == status
    elif _digits(value):
        digits = value.strip().lstrip("0") or "0"
        # int() refuses strings past 4300 digits: compare lengths first, as SQS caps at 12 h.
        expected = MAX_VISIBILITY if len(digits) > 6 else min(int(digits), MAX_VISIBILITY)
        assert outcome == RetryAt(expected, status)
    else:
        # An HTTP-date or garbage: either a bounded RetryAt or a failure, never anything else.
        assert isinstance(outcome, RetryAt | Failed), outcome
        if isinstance(outcome, RetryAt):
            assert 0 <= outcome.delay <= MAX_VISIBILITY
        if value.strip().startswith("-"):
            assert isinstance(outcome, Failed), "a negative Retry-After is not a delay"


@given(offset=st.integers(-(10**9), 10**9), status=st.sampled_from([429, 503]))
@settings(max_examples=500, deadline=None)
def test_http_dates_come_back_after_that_time(offset: int, status: int) -> None:
    when = datetime.fromtimestamp(math.floor(NOW) + offset, UTC)
    outcome = classify(status, {"Retry-After": format_datetime(when, usegmt=True)}, NOW)
    expected = max(0, min(MAX_VISIBILITY, math.ceil(when.timestamp() - NOW)))
    assert outcome == RetryAt(expected, status)
