"""Bad configuration through the real process: exit 2, one line on stderr naming it, no traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.servers import AWS_TEST_ENV

CASES = [
    ({"CARRIER_SQS_BATCH_SIZE": "11"}, "CARRIER_SQS_BATCH_SIZE"),
    ({"CARRIER_SQS_BATCH_SIZE": "ten"}, "CARRIER_SQS_BATCH_SIZE"),
    ({"CARRIER_SQS_WAIT_TIME": "1.5.5s"}, "CARRIER_SQS_WAIT_TIME"),
    ({"CARRIER_WEBHOOK_REQUEST_TIMEOUT": "-3s"}, "CARRIER_WEBHOOK_REQUEST_TIMEOUT"),
    ({"CARRIER_WEBHOOK_ENDPOINT": "ftp://127.0.0.1/x"}, "CARRIER_WEBHOOK_ENDPOINT"),
    ({"CARRIER_HTTP_ADDR": "127.0.0.1:99999"}, "CARRIER_HTTP_ADDR"),
    ({"CARRIER_LOG_LEVEL": "loud\nTraceback"}, "CARRIER_LOG_LEVEL"),
    ({"CARRIER_SQS_QUEUE_NAME": None}, "CARRIER_SQS_QUEUE_NAME"),
    ({"CARRIER_RETRY_BACKOFF_BASE": "2h", "CARRIER_RETRY_BACKOFF_MAX": "1h"}, "CARRIER_RETRY_BACKOFF_BASE"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "variable"), CASES, ids=[v for _, v in CASES])
def test_bad_config_exits_2_with_one_line(
    sidecar_exe: str, overrides: dict[str, str | None], variable: str
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("CARRIER_")}
    environ.update(AWS_TEST_ENV)
    # A valid configuration pointing nowhere reachable: only the override can be at fault,
    # and nothing may be received before the configuration is checked.
    environ.update(
        {
            "CARRIER_SQS_QUEUE_NAME": "orders",
            "CARRIER_SQS_ENDPOINT": "http://127.0.0.1:9",
            "CARRIER_HTTP_ADDR": "none",
        }
    )
    for key, value in overrides.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    done = subprocess.run(
        [sidecar_exe], env=environ, capture_output=True, timeout=30, stdin=subprocess.DEVNULL
    )
    stderr = done.stderr.decode(errors="replace")
    stdout = done.stdout.decode(errors="replace")
    assert done.returncode == 2, (done.returncode, stderr, stdout)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert variable in lines[0], lines[0]
    # The value itself may echo "Traceback" (the LOG_LEVEL case): only a real one is a failure.
    assert "Traceback (most recent call last)" not in stderr + stdout
