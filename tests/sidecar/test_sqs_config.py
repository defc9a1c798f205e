"""Where the SQS client points and signs: region and endpoint from the settings (pure)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from carrier_sidecar import __version__
from carrier_sidecar.aws import classify_code, region_from_url
from carrier_sidecar.settings import Settings
from carrier_sidecar.sqs import endpoint_for


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.us-west-2.amazonaws.com", "us-west-2"),
        ("https://sqs.eu-central-1.amazonaws.com/123456789012/orders", "eu-central-1"),
        ("https://us-gov-west-1.queue.amazonaws.com/1/q", "us-gov-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/1/q", "cn-north-1"),
        ("https://sqs.ap-southeast-10.amazonaws.com/1/q", "ap-southeast-10"),
        ("https://sqs.us-isob-east-1.sc2s.sgov.gov/1/q", "us-isob-east-1"),
        ("https://sqs.us-iso-east-1.c2s.ic.gov/1/q", "us-iso-east-1"),
        ("https://sqs.eu-isoe-west-1.cloud.adc-e.uk/1/q", "eu-isoe-west-1"),
        ("https://sqs-fips.us-gov-east-1.amazonaws.com/1/q", "us-gov-east-1"),
        ("https://vpce-0a1b.sqs.eu-west-1.vpce.amazonaws.com/1/q", "eu-west-1"),
        ("https://sqs.eu-west-3.api.aws/1/q", "eu-west-3"),
        ("https://queue.amazonaws.com/1/q", "us-east-1"),
        ("https://eu-west-1.queue.amazonaws.com/1/q", "eu-west-1"),
        ("https://sqs.eu-west-1.example.com/1/q", None),
        ("https://sqs.eu-west-1.amazonaws.com.evil.test/1/q", None),
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


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("AWS.SimpleQueueService.NonExistentQueue", "missing"),
        ("QueueDoesNotExist", "missing"),
        ("AccessDenied", "denied"),
        ("KMS.AccessDeniedException", "denied"),
        ("InvalidClientTokenId", "credentials"),
        ("InvalidIdentityToken", "credentials"),
        ("ThrottlingException", "transient"),
        ("RequestThrottled", "transient"),
        ("503", "transient"),
        ("InvalidParameterValue", "other"),
        (None, "other"),
    ],
)
def test_error_classes(code: str | None, kind: str) -> None:
    """One table of AWS error codes for the sidecar and the operator."""
    assert classify_code(code) == kind
