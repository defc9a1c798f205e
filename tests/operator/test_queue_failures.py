"""One classifier for the operator's SQS failures: the queue check and the scheduler's send name
the same failure the same way (pure logic, real botocore exception types)."""

from __future__ import annotations

import aiohttp
import pytest
from botocore import exceptions as boto

from carrier_operator.queue_failures import describe
from carrier_operator.queues import READ_QUEUE
from carrier_operator.scheduler import SEND_TICK, send_failure
from carrier_sidecar.settings import Settings

SETTINGS = Settings.from_fields(
    {"sqs_queue_name": "orders", "sqs_region": "eu-west-1", "webhook_endpoint": "http://w:8080/"}
)


def client_error(code: str, operation: str = "SendMessage") -> boto.ClientError:
    return boto.ClientError({"Error": {"Code": code, "Message": f"{code} said AWS"}}, operation)


CASES = [
    (client_error("AWS.SimpleQueueService.NonExistentQueue"), "QueueNotFound"),
    (client_error("AccessDenied"), "AccessDenied"),
    (client_error("InvalidClientTokenId"), "AccessDenied"),
    (TimeoutError(), "EndpointUnreachable"),
    (boto.NoCredentialsError(), "NoCredentials"),
    (
        boto.CredentialRetrievalError(provider="assume-role-with-web-identity", error_msg="x"),
        "NoCredentials",
    ),
    (boto.NoRegionError(), "NoRegion"),
    (
        boto.EndpointConnectionError(endpoint_url="https://sqs.eu-west-1.amazonaws.com/"),
        "EndpointUnreachable",
    ),
    (aiohttp.ClientConnectionError("reset"), "EndpointUnreachable"),
    (ConnectionRefusedError(111, "refused"), "EndpointUnreachable"),
]


@pytest.mark.parametrize(
    ("exc", "reason"), CASES, ids=[type(e).__name__ + ":" + r for e, r in CASES]
)
def test_the_check_and_the_send_give_one_reason(exc: BaseException, reason: str) -> None:
    assert describe(exc, SETTINGS, READ_QUEUE)[0] == reason
    assert send_failure(exc, SETTINGS)[0] == reason


def test_a_credential_provider_failure_is_not_an_unreachable_endpoint() -> None:
    exc = boto.CredentialRetrievalError(
        provider="assume-role-with-web-identity", error_msg="no token"
    )
    reason, message = send_failure(exc, SETTINGS)
    assert reason == "NoCredentials"
    assert "cannot get AWS credentials" in message
    assert "sqs:SendMessage" in message


def test_messages_name_the_queue_the_action_and_whose_identity() -> None:
    _, check = describe(client_error("AccessDenied", "GetQueueAttributes"), SETTINGS, READ_QUEUE)
    _, send = describe(client_error("AccessDenied", "SendMessage"), SETTINGS, SEND_TICK)
    assert "may not call sqs:GetQueueAttributes on orders (region eu-west-1)" in check
    assert "pod's own identity" in check
    assert "may not call sqs:SendMessage on orders (region eu-west-1)" in send
    assert "grant it sqs:SendMessage" in send


def test_other_failures_keep_each_call_s_own_reason() -> None:
    throttled = client_error("ThrottlingException")
    assert describe(throttled, SETTINGS, READ_QUEUE)[0] == "QueueError"
    assert send_failure(throttled, SETTINGS) == (
        "SendError",
        "ThrottlingException sending to orders (region eu-west-1): ThrottlingException said AWS",
    )
    assert describe(RuntimeError("bug"), SETTINGS, READ_QUEUE)[0] == "QueueError"


def test_a_missing_queue_reads_the_same_for_both() -> None:
    missing = client_error("AWS.SimpleQueueService.NonExistentQueue")
    expected = ("QueueNotFound", "queue orders does not exist (region eu-west-1)")
    assert describe(missing, SETTINGS, READ_QUEUE) == expected
    assert send_failure(missing, SETTINGS) == expected
