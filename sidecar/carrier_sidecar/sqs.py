"""A thin async port over aiobotocore: the only module that talks to SQS.

Start-up problems (no such queue, credentials rejected, endpoint unreachable) become a
:class:`ConfigError` before anything is received; run-time errors are raised to the caller,
which retries with backoff. botocore's own retries are off so every attempt is counted and logged
in one place.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import getproxies

from . import __version__, credentials
from .aws import (
    ACCESS_DENIED_CODES,
    BAD_CREDENTIALS_CODES,
    MISSING_QUEUE_CODES,
    credential_failure,
    error_code,
    error_message,
    is_aws_host,
    is_transient_code,
    region_from_url,
    short_error,
)
from .messages import Message
from .metrics_port import MetricsPort
from .queue_port import Failures
from .settings import ConfigError, Settings, env_name
from .sqshealth import SqsHealth

log = logging.getLogger("carrier.sqs")

SYSTEM_ATTRIBUTES = [
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SentTimestamp",
    "MessageGroupId",
]
MAX_BATCH = 10
STARTUP_ATTEMPTS = 4
STS_STARTUP_ATTEMPTS = 2


def endpoint_for(settings: Settings) -> str | None:
    """The configured endpoint, else the host of a non-AWS queue URL (a local server), else None."""
    if settings.sqs_endpoint:
        return settings.sqs_endpoint
    url = settings.sqs_queue_url
    if url and not is_aws_host(urlsplit(url).hostname):
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"
    return None


def tls_verify_for(endpoint: str | None) -> bool | None:
    """False for a plain-http endpoint reached without a proxy: there is no certificate to check,
    and botocore would otherwise parse the whole CA bundle for it (~36 ms of start-up CPU, ~1 MB).
    None (botocore's default: AWS_CA_BUNDLE or its bundle) for https, or when an http proxy is
    set, since that proxy may itself be reached over TLS."""
    plain = endpoint is not None and endpoint.lower().startswith("http://")
    return False if plain and "http" not in getproxies() else None


class SqsPort:
    """One aiobotocore client, the resolved queue URL and its visibility timeout."""

    def __init__(self, settings: Settings, meter: MetricsPort) -> None:
        self._settings = settings
        self._meter = meter
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._session: Any = None
        self._region: str | None = None
        self.endpoint = endpoint_for(settings)
        self.queue_url: str | None = settings.sqs_queue_url
        self.visibility_timeout: float = 30.0
        self.region: str | None = None  # as resolved by open()
        self.resolved = False
        self.health = SqsHealth(settings.queue_label)

    async def open(self) -> None:
        from aiobotocore.config import AioConfig  # lazy: keep `--help` and errors light
        from aiobotocore.session import get_session

        from .endpoints import install_lean_resolver

        session = get_session()
        install_lean_resolver(session)
        # Merged into the STS/SSO clients of the credential providers: bounded, one attempt.
        session.set_default_client_config(credentials.provider_client_config())
        self._session = session
        s = self._settings
        region = (
            s.sqs_region
            or session.get_config_variable("region")
            or region_from_url(s.sqs_queue_url)
            or region_from_url(self.endpoint)
            or ("us-east-1" if self.endpoint else None)
        )
        self._region = region
        if region is None:
            raise ConfigError(
                f"{env_name('sqs_region')}: no AWS region found; set it (or AWS_REGION), "
                f"or give {env_name('sqs_queue_url')} or {env_name('sqs_endpoint')}"
            )
        self.region = region
        config = AioConfig(
            connect_timeout=5,
            read_timeout=s.sqs_wait_time + 15,
            max_pool_connections=s.sqs_receivers + 2,
            retries={"mode": "standard", "total_max_attempts": 1},
            parameter_validation=False,
            # A fixed string: botocore otherwise rebuilds and sanitises its own on every call.
            user_agent=f"carrier-sidecar/{__version__}",
        )
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "sqs",
                region_name=region,
                endpoint_url=self.endpoint,
                config=config,
                verify=tls_verify_for(self.endpoint),
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()

    async def _call(self, action: str, **params: Any) -> Any:
        method = getattr(self._client, _SNAKE[action])
        try:
            result = await method(**params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._meter.sqs_request(action, "error")
            self._meter.sqs_error(self.health.failed(action, exc))
            raise
        self._meter.sqs_request(action, "ok")
        self.health.succeeded()
        return result

    # --- start-up ---------------------------------------------------------------------------
    async def resolve(self) -> None:
        """Find the queue and its visibility timeout, or raise ConfigError (bounded retries)."""
        delay = 0.5
        for attempt in range(1, STARTUP_ATTEMPTS + 1):
            try:
                await self._resolve_once()
                self.resolved = True
                return
            except ConfigError:
                raise
            except Exception as exc:
                # STS gets fewer tries: each may wait out a 3 s read timeout (a hung endpoint).
                limit = STS_STARTUP_ATTEMPTS if credential_failure(exc) else STARTUP_ATTEMPTS
                if attempt >= limit or not _transient(exc):
                    raise ConfigError(await self._describe_startup_failure(exc)) from None
                log.warning(
                    "SQS not reachable yet, retrying",
                    extra={"error": short_error(exc), "attempt": attempt},
                )
                await asyncio.sleep(delay)
                delay *= 2

    async def _resolve_once(self) -> None:
        s = self._settings
        if s.sqs_queue_name is not None:
            found = await self._call("GetQueueUrl", QueueName=s.sqs_queue_name)
            self.queue_url = str(found["QueueUrl"])
        attrs = await self._call(
            "GetQueueAttributes", QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
        )
        queue_visibility = float(attrs.get("Attributes", {}).get("VisibilityTimeout", 30))
        # SQS counts whole seconds; the heartbeat must plan with what the receive really asks for.
        self.visibility_timeout = float(
            int(s.sqs_visibility_timeout)
            if s.sqs_visibility_timeout is not None
            else queue_visibility
        )

    async def _describe_startup_failure(self, exc: BaseException) -> str:
        if credential_failure(exc):
            endpoint = await credentials.sts_endpoint(self._session, self._region)
            return credentials.describe(exc, endpoint)
        return self._describe_startup_error(exc)

    def _describe_startup_error(self, exc: BaseException) -> str:
        s = self._settings
        code = error_code(exc)
        where = self.endpoint or "AWS"
        if code in MISSING_QUEUE_CODES:
            var = env_name("sqs_queue_name" if s.sqs_queue_name else "sqs_queue_url")
            return f"{var}: queue {s.queue_label!r} does not exist at {where}"
        if code in BAD_CREDENTIALS_CODES | ACCESS_DENIED_CODES:
            return f"AWS credentials rejected by SQS at {where} ({code}): {error_message(exc)}"
        if type(exc).__name__ in {"NoCredentialsError", "PartialCredentialsError"}:
            return "no AWS credentials found (env, shared files, web identity, instance metadata)"
        if code is not None:
            return f"SQS refused queue {s.queue_label!r} at {where} ({code}): {error_message(exc)}"
        reason = f"{env_name('sqs_endpoint')}: cannot reach SQS at {where}: {short_error(exc)}"
        if type(exc).__name__ == "SSLError" and "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return f"{reason} (a private CA is trusted through AWS_CA_BUNDLE)"
        return reason

    # --- the three calls of the delivery flow -------------------------------------------------
    async def receive(self, max_n: int, wait: float, visibility: float | None) -> list[Message]:
        params: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": max_n,
            "WaitTimeSeconds": int(wait),
            "MessageSystemAttributeNames": SYSTEM_ATTRIBUTES,
            "MessageAttributeNames": ["All"],
        }
        if visibility is not None:
            params["VisibilityTimeout"] = int(visibility)
        result = await self._call("ReceiveMessage", **params)
        messages: list[Message] = result.get("Messages", [])
        return messages

    async def delete_batch(self, handles: list[str]) -> Failures:
        """Delete up to 10; return {index: failure entry} for entries SQS reports failed."""
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
        result = await self._call("DeleteMessageBatch", QueueUrl=self.queue_url, Entries=entries)
        return _failures(result)

    async def change_visibility_batch(self, items: list[tuple[str, int]]) -> Failures:
        """Set visibility of up to 10 (handle, seconds); return failures by index."""
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": v}
            for i, (h, v) in enumerate(items)
        ]
        result = await self._call(
            "ChangeMessageVisibilityBatch", QueueUrl=self.queue_url, Entries=entries
        )
        return _failures(result)


_SNAKE: dict[str, str] = {
    "GetQueueUrl": "get_queue_url",
    "GetQueueAttributes": "get_queue_attributes",
    "ReceiveMessage": "receive_message",
    "DeleteMessageBatch": "delete_message_batch",
    "ChangeMessageVisibilityBatch": "change_message_visibility_batch",
}
BatchAction = Literal["DeleteMessageBatch", "ChangeMessageVisibilityBatch"]


def _failures(result: dict[str, Any]) -> Failures:
    return {int(f["Id"]): f for f in result.get("Failed", []) or []}


def _transient(exc: BaseException) -> bool:
    if credential_failure(exc):
        return credentials.worth_retrying(exc)
    code = error_code(exc)
    if code is None:
        return type(exc).__name__ not in {"NoCredentialsError", "PartialCredentialsError"}
    return is_transient_code(code)
