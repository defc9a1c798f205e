"""aws.error_class: every exception an SQS call can raise, sorted into the classes of aws.py."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from carrier_sidecar.aws import ErrorClass, error_class


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "ReceiveMessage")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("AWS.SimpleQueueService.NonExistentQueue"), "missing"),
        (client_error("AccessDenied"), "denied"),
        (client_error("KMS.AccessDeniedException"), "denied"),
        (client_error("InvalidClientTokenId"), "credentials"),
        (client_error("InvalidIdentityToken"), "credentials"),
        (client_error("ThrottlingException"), "transient"),
        (client_error("InvalidParameterValue"), "other"),
        (NoCredentialsError(), "credentials"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "transient"),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), "transient"),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), "transient"),
        (ConnectionResetError(), "transient"),
        (ValueError("a bug"), "other"),
    ],
)
def test_error_classes(exc: BaseException, kind: ErrorClass) -> None:
    assert error_class(exc) == kind


def test_a_file_error_outside_the_credential_providers_is_transient() -> None:
    """Only errors raised inside botocore's credential providers count as credentials (the
    real provider path is tested on the process: tests/sidecar/test_credentials.py)."""
    from botocore.utils import FileWebIdentityTokenLoader

    with pytest.raises(FileNotFoundError) as raised:
        FileWebIdentityTokenLoader("/nonexistent/token")()
    assert error_class(raised.value) == "transient", "raised outside credentials.py: no proof"
