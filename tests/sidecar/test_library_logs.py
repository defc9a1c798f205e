"""Issue 13 §3: botocore's failing credential refresh logs one line per distinct error, not a
~1.8 KB traceback per SQS call. botocore's own refreshable credentials, really failing."""

from __future__ import annotations

import datetime
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiobotocore.credentials import AioRefreshableCredentials

from carrier_sidecar.logs import configure


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure("info", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def expiring_in(minutes: float) -> dict[str, Any]:
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    return {
        "access_key": "AKID",
        "secret_key": "secret",
        "token": "token",
        "expiry_time": expiry.isoformat(),
    }


async def test_a_failing_refresh_is_one_line_per_distinct_error(captured: io.StringIO) -> None:
    def token_gone() -> dict[str, Any]:
        raise FileNotFoundError(2, "No such file or directory", "/var/run/token")

    # 12 minutes left: inside botocore's advisory window (15 min), outside the mandatory (10).
    credentials = AioRefreshableCredentials.create_from_metadata(
        expiring_in(12), token_gone, "assume-role-with-web-identity"
    )
    for _ in range(50):
        frozen = await credentials.get_frozen_credentials()  # as every SQS call does
        assert frozen.access_key == "AKID", "the old credentials still serve"
    lines = [json.loads(x) for x in captured.getvalue().splitlines()]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line["logger"] == "aiobotocore.credentials"
    assert "advisory refresh period" in line["msg"]
    assert line["error"].startswith("FileNotFoundError: [Errno 2] No such file or directory")
    assert "exception" not in line
    assert "Traceback" not in captured.getvalue()


def test_our_own_records_are_never_deduplicated(captured: io.StringIO) -> None:
    log = logging.getLogger("carrier.sqs")
    for _ in range(3):
        log.warning("ReceiveMessage failed; retrying")
    assert len(captured.getvalue().splitlines()) == 3
