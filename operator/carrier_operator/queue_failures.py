"""Why an SQS call the operator made failed, as a condition reason and a line a person can act on.

One home for the queue check (:mod:`.queues`) and the scheduler's send (:mod:`.scheduler`): the
same AWS failure gets the same reason in ``QueueReachable`` and in a schedule's ``lastResult``,
and a credential failure is never reported as an unreachable endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from botocore import exceptions as boto

from carrier_sidecar.aws import classify_code, error_code, error_message
from carrier_sidecar.settings import Settings

from .queue_place import where

# Failures to reach the endpoint at all (a refused or cut connection, a network timeout).
UNREACHABLE = (
    boto.EndpointConnectionError,
    boto.ConnectTimeoutError,
    boto.ReadTimeoutError,
    boto.ConnectionClosedError,
    aiohttp.ClientError,
    OSError,
)
# Everything :func:`describe` knows; anything else is a bug worth logging with its traceback.
KNOWN = (boto.ClientError, boto.BotoCoreError, TimeoutError, ValueError, *UNREACHABLE)


@dataclass(frozen=True)
class QueueCall:
    """What the operator was doing when it failed."""

    action: str  # the SQS action named in an AccessDenied when botocore does not say
    verb: str  # "reading", "sending to": the queue follows
    other: str  # the reason for any failure not named below ("QueueError", "SendError")
    identity: str  # whose identity matters here, appended to AccessDenied and NoCredentials


def describe(
    exc: BaseException, settings: Settings, call: QueueCall, *, timeout: float | None = None
) -> tuple[str, str]:
    """(reason, message) for a failed call on ``settings``' queue."""
    queue = f"{settings.queue_label}{where(settings)}"
    if isinstance(exc, boto.ClientError):
        code = error_code(exc) or "Unknown"
        text = error_message(exc) or code
        kind = classify_code(code)
        if kind == "missing":
            return "QueueNotFound", f"queue {settings.queue_label} does not exist{where(settings)}"
        if kind in {"denied", "credentials"}:
            action = f"sqs:{getattr(exc, 'operation_name', None) or call.action}"
            return (
                "AccessDenied",
                f"the operator's AWS identity may not call {action} on {queue}: {text}. "
                f"{call.identity}",
            )
        return call.other, f"{code} {call.verb} {queue}: {text}"
    if isinstance(exc, TimeoutError):
        within = f" within {timeout:g}s" if timeout is not None else ""
        return "EndpointUnreachable", f"no answer{within} {call.verb} {queue}"
    if isinstance(exc, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return "NoCredentials", f"the operator has no AWS credentials: {exc}. {call.identity}"
    if isinstance(exc, boto.CredentialRetrievalError):
        return "NoCredentials", f"the operator cannot get AWS credentials: {exc}. {call.identity}"
    if isinstance(exc, boto.NoRegionError):
        return "NoRegion", "no region: set spec.queue.region or the operator's AWS_REGION"
    if isinstance(exc, UNREACHABLE):
        return "EndpointUnreachable", f"cannot reach SQS {call.verb} {queue}: {exc}"
    if isinstance(exc, (boto.BotoCoreError, ValueError)):
        return call.other, f"{call.verb} {queue}: {exc}"
    return call.other, f"{call.verb} {queue}: {exc!r}"
