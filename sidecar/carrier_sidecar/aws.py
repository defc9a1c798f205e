"""What this project knows about AWS names and errors, in one place (pure, no I/O).

The sidecar and the operator both read regions out of queue URLs and sort AWS error codes
into "retry it", "the queue is gone" and "you may not": two copies of that knowledge had
already drifted apart, so both sides import it from here.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal
from urllib.parse import urlsplit

# DNS suffixes of AWS partitions (aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e,
# aws-iso-f), plus the dual-stack ``api.aws``: a queue URL on any of these is AWS's own.
AWS_DNS_SUFFIXES = (
    "amazonaws.com",
    "amazonaws.com.cn",
    "api.aws",
    "c2s.ic.gov",
    "sc2s.sgov.gov",
    "cloud.adc-e.uk",
    "csp.hci.ic.gov",
)
_REGION_LABEL = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")
_LEGACY_US_EAST_1 = "queue.amazonaws.com"  # https://queue.amazonaws.com/123/q

MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
# The caller may not do this (IAM, a key policy): a person must change a policy.
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException", "AuthorizationError"}
)
# The credentials themselves are refused: wrong, expired, or not signed right.
BAD_CREDENTIALS_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSecurity",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
        "AuthFailure",
        "InvalidIdentityToken",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "RequestThrottled",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "KMS.ThrottlingException",
        "IDPCommunicationError",
    }
)

ErrorClass = Literal["missing", "denied", "credentials", "transient", "other"]

_XML_CODE = re.compile(r"<Code>([^<]+)</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")


def is_aws_host(host: str | None) -> bool:
    """True for a host under one of AWS's own DNS suffixes (not a local or foreign server)."""
    host = (host or "").lower().rstrip(".")
    return any(host == suffix or host.endswith("." + suffix) for suffix in AWS_DNS_SUFFIXES)


def region_from_url(url: str | None) -> str | None:
    """The region named in an AWS SQS URL or endpoint, else None.

    Every current shape: ``sqs.eu-west-1.amazonaws.com``, the legacy ``eu-west-1.queue.
    amazonaws.com`` and ``queue.amazonaws.com`` (us-east-1), ``sqs-fips.…``, VPC endpoints
    (``vpce-….sqs.us-east-1.vpce.amazonaws.com``), dual-stack ``sqs.us-east-1.api.aws``, China
    and the isolated partitions (``sqs.us-isob-east-1.sc2s.sgov.gov``). Foreign hosts give None.
    """
    if not url:
        return None
    host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    if not is_aws_host(host):
        return None
    if host == _LEGACY_US_EAST_1:
        return "us-east-1"
    for label in host.split("."):
        if _REGION_LABEL.fullmatch(label):
            return label
    return None


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError; servers that answer the JSON protocol in
    XML (moto) are read too. None for errors that carry no AWS answer (network, credentials)."""
    error = _error(exc)
    if error is None:
        return None
    code = str(error.get("Code") or "")
    if not code or code.isdigit():
        found = _XML_CODE.search(str(error.get("Message") or ""))
        if found:
            return found.group(1)
    return code or None


def error_message(exc: BaseException) -> str:
    """AWS's own message for a ClientError (one line, at most 200 characters)."""
    error = _error(exc)
    if error is None:
        return short_error(exc)
    text = str(error.get("Message") or "")
    found = _XML_MESSAGE.search(text)
    return " ".join((found.group(1) if found else text).split())[:200]


def is_transient_code(code: str) -> bool:
    """Worth retrying as is: throttling and server-side faults (not a request AWS refuses)."""
    return code in TRANSIENT_CODES or "Throttl" in code or (code.isdigit() and int(code) >= 500)


def classify_code(code: str | None) -> ErrorClass:
    """Which kind of trouble an AWS error code means."""
    if code is None:
        return "other"
    if code in MISSING_QUEUE_CODES:
        return "missing"
    if code in ACCESS_DENIED_CODES:
        return "denied"
    if code in BAD_CREDENTIALS_CODES:
        return "credentials"
    if is_transient_code(code):
        return "transient"
    return "other"


# botocore's exceptions for credentials it could not get at all (no ClientError, no code).
CREDENTIAL_EXCEPTIONS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "InvalidConfigError",
        "UnauthorizedSSOTokenError",
        "TokenRetrievalError",
    }
)


# botocore's network failures (not all of them are OSErrors).
_NETWORK_EXCEPTIONS = frozenset({"EndpointConnectionError", "ConnectionError", "HTTPClientError"})


def error_class(exc: BaseException) -> ErrorClass:
    """:func:`classify_code` for any exception: a credential provider's failure (no token file,
    STS refusing the token) is ``credentials`` too, though it carries no SQS error code."""
    if credential_failure(exc):
        return "credentials"
    code = error_code(exc)
    if code is None and (
        isinstance(exc, OSError | TimeoutError)
        or any(c.__name__ in _NETWORK_EXCEPTIONS for c in type(exc).__mro__)
    ):
        return "transient"
    return classify_code(code)


def credential_failure(exc: BaseException) -> bool:
    """True when ``exc`` came out of getting credentials, not out of the call itself: a botocore
    credential exception, or any error (a missing token file, STS unreachable or refusing the
    token) raised inside botocore's credential providers."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in CREDENTIAL_EXCEPTIONS or _raised_in_credentials(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _raised_in_credentials(exc: BaseException) -> bool:
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename.endswith(_CREDENTIAL_MODULES):
            return True
        trace = trace.tb_next
    return False


_CREDENTIAL_MODULES = ("botocore/credentials.py", "aiobotocore/credentials.py")


def short_error(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters (for logs and conditions)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300]


def _error(exc: BaseException) -> dict[str, Any] | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        return error if isinstance(error, dict) else {}
    return None


def partition_of(region: str) -> str:
    """The AWS partition (``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso-b`` …) a region is in,
    read from botocore's own partition table (the slice in ``_endpoints_data``); ``aws`` if none
    claims it."""
    for name, pattern, regions in _partitions():
        if region in regions or pattern.fullmatch(region):
            return name
    return "aws"


def queue_arn(queue_url: str | None, region: str | None) -> str | None:
    """``arn:{partition}:sqs:{region}:{account}:{name}`` for an AWS queue URL, else None.

    Only a URL on AWS's own hosts names a real ARN; a local server's (moto, LocalStack) does
    not, and neither does a URL without a 12-digit account and a queue name.
    """
    if not queue_url:
        return None
    parts = urlsplit(queue_url)
    region = region_from_url(queue_url) or region
    if not is_aws_host(parts.hostname) or not region:
        return None
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 2 or not _ACCOUNT.fullmatch(segments[0]):
        return None
    account, name = segments
    return f"arn:{partition_of(region)}:sqs:{region}:{account}:{name}"


_ACCOUNT = re.compile(r"\d{12}")


@functools.cache
def _partitions() -> tuple[tuple[str, re.Pattern[str], frozenset[str]], ...]:
    import json

    from ._endpoints_data import ENDPOINTS_JSON

    return tuple(
        (
            str(p["partition"]),
            re.compile(str(p.get("regionRegex") or "(?!)")),
            frozenset(p.get("regions") or ()),
        )
        for p in json.loads(ENDPOINTS_JSON).get("partitions", [])
    )


def parse_queue_arn(arn: str) -> tuple[str, str, str] | None:
    """``(region, account, name)`` of an SQS queue ARN, or None if ``arn`` is not one."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
        return None
    _, _, _, region, account, name = parts
    return region, account, name


def queue_url_from_arn(arn: str, like_url: str) -> str | None:
    """The URL of the queue ``arn`` names, on the same SQS endpoint as ``like_url`` (AWS's own
    host of that region, or a local server's: moto and LocalStack serve ``/{account}/{name}``);
    None if ``arn`` is not an SQS queue ARN. A redrive policy's dead-letter queue is in the
    source queue's region, so the source's endpoint serves it too."""
    parsed = parse_queue_arn(arn)
    if parsed is None:
        return None
    _region, account, name = parsed
    parts = urlsplit(like_url)
    return f"{parts.scheme}://{parts.netloc}/{account}/{name}"
