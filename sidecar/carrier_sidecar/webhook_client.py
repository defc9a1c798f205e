"""One POST per message over one shared keep-alive connection pool.

The outcome is decided on the status line: once a 2xx has arrived the worker has said yes,
whatever its body then does (never ends, is cut short, is huge). The body is read only within
a small budget (:data:`BODY_BUDGET_BYTES`, :data:`BODY_BUDGET_SECONDS`), for the connection's
sake: a body read to its end lets the connection go back to the pool; any other is dropped.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import aiohttp

from . import __version__
from .envelope import Envelope
from .outcome import Failed, Outcome, classify
from .settings import ConfigError, Settings, env_name

USER_AGENT = f"carrier-sidecar/{__version__}"
BODY_BUDGET_BYTES = 64 * 1024
BODY_BUDGET_SECONDS = 1.0


def tls_context(skip_verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    """TLS 1.2 or newer (the Go Carrier demanded 1.3, which many in-cluster servers lack).

    ``ca_file`` (``CARRIER_WEBHOOK_CA_FILE``) is trusted in addition to the system's CAs; one
    that cannot be read is a configuration error naming the variable and the path.
    """
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise ConfigError(
                f"{env_name('webhook_ca_file')}: cannot load CA certificates from {ca_file!r}: {reason}"
            ) from None
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def open_session(settings: Settings) -> aiohttp.ClientSession:
    """The one HTTP pool: room for every delivery in flight plus the health checks."""
    uses_tls = any(
        (url or "").startswith("https:")
        for url in (settings.webhook_endpoint, settings.webhook_health_check_endpoint)
    )
    connector = aiohttp.TCPConnector(
        limit=settings.in_flight_limit + 2,
        ssl=(
            tls_context(settings.webhook_tls_insecure_skip_verify, settings.webhook_ca_file)
            if uses_tls
            else True
        ),
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # never replay a worker's Set-Cookie to it
    )


class WebhookClient:
    def __init__(
        self, settings: Settings, session: aiohttp.ClientSession, *, source: str | None = None
    ) -> None:
        self._session = session
        # ``source``: the queue as CloudEvents' ``ce-source`` names it (its ARN, else its URL).
        self.envelope = Envelope(
            settings, source or str(settings.sqs_queue_url or settings.queue_label)
        )
        self._timeout = aiohttp.ClientTimeout(total=settings.webhook_request_timeout)
        self._timeout_text = f"timed out after {settings.webhook_request_timeout:g}s"

    def unrouted_task(self, message: dict[str, Any]) -> str | None:
        """The task a message names that ``CARRIER_WEBHOOK_TASKS`` does not list (POST it nowhere)."""
        return self.envelope.unrouted_task(message)

    async def post(self, message: dict[str, Any]) -> Outcome:
        request = self.envelope.build(message)
        if request is None:  # the delivery engine holds these back; never POST one anywhere
            return Failed("the message names a task CARRIER_WEBHOOK_TASKS does not list")
        try:
            async with self._session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect is an answer, not a place to re-POST
            ) as response:
                outcome = classify(response.status, response.headers, time.time())
                await drain_body(response)
                return outcome
        except TimeoutError:
            return Failed(self._timeout_text, timeout=True)
        except aiohttp.ClientError as exc:
            return Failed(f"{type(exc).__name__}: {exc}")


async def drain_body(response: aiohttp.ClientResponse) -> int:
    """Read what is left of the body within the budget; drop the connection if it did not end.

    Never raises and never changes the outcome. Returns the bytes read (for tests and logs).
    """
    if response.content.at_eof():
        return 0  # the usual small answer, already read whole: no budget timer to arm per POST
    read = 0
    try:
        async with asyncio.timeout(BODY_BUDGET_SECONDS):
            while read <= BODY_BUDGET_BYTES:
                chunk = await response.content.readany()
                if not chunk:
                    return read  # the whole body: the connection may be reused
                read += len(chunk)
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass
    response.close()  # endless, cut short or too big: not worth keeping this connection
    return read
