"""Where the SQS client points and signs: region and endpoint from the settings (pure)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from carrier_sidecar import __version__
from carrier_sidecar.settings import Settings
from carrier_sidecar.sqs import endpoint_for, region_from_url


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.us-west-2.amazonaws.com", "us-west-2"),
        ("https://sqs.eu-central-1.amazonaws.com/123456789012/orders", "eu-central-1"),
        ("https://us-gov-west-1.queue.amazonaws.com/1/q", "us-gov-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/1/q", "cn-north-1"),
        ("http://127.0.0.1:4566/000000000000/q", None),
        (None, None),
    ],
)
def test_region_from_url(url: str | None, region: str | None) -> None:
    assert region_from_url(url) == region


@pytest.mark.parametrize(
    ("fields", "endpoint"),
    [
        ({"sqs_queue_name": "q"}, None),
        ({"sqs_queue_name": "q", "sqs_endpoint": "http://127.0.0.1:1"}, "http://127.0.0.1:1"),
        ({"sqs_queue_url": "https://sqs.us-east-1.amazonaws.com/1/q"}, None),
        ({"sqs_queue_url": "http://localhost:4566/000000000000/q"}, "http://localhost:4566"),
        (
            {"sqs_queue_url": "http://localhost:4566/0/q", "sqs_endpoint": "http://e:1"},
            "http://e:1",
        ),
    ],
)
def test_endpoint(fields: dict[str, str], endpoint: str | None) -> None:
    assert endpoint_for(Settings.from_fields(fields)) == endpoint


def test_module_entry_point_and_version(sidecar_command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sidecar", "--version"], capture_output=True, timeout=30
    )
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"carrier-sidecar {__version__}"
    helped = subprocess.run([*sidecar_command, "--help"], capture_output=True, timeout=30)
    assert helped.returncode == 0
    assert b"CARRIER_SQS_QUEUE_NAME" in helped.stdout
