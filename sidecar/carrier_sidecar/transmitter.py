"""One POST per message over one shared keep-alive connection pool."""

from __future__ import annotations

import ssl
import time
from typing import Any

import aiohttp

from . import __version__
from .envelope import Envelope
from .outcome import Failed, Outcome, classify
from .settings import Settings

USER_AGENT = f"carrier-sidecar/{__version__}"


def tls_context(skip_verify: bool) -> ssl.SSLContext:
    """TLS 1.2 or newer (the Go Carrier demanded 1.3, which many in-cluster servers lack)."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
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
        ssl=tls_context(settings.webhook_tls_insecure_skip_verify) if uses_tls else True,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # never replay a worker's Set-Cookie to it
    )


class Transmitter:
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

    async def post(self, message: dict[str, Any]) -> Outcome:
        request = self.envelope.build(message)
        if request is None:  # the courier holds these back; never POST one anywhere
            return Failed("the message names a task CARRIER_WEBHOOK_TASKS does not list")
        try:
            async with self._session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect is an answer, not a place to re-POST
            ) as response:
                while await response.content.readany():  # drain (bounded memory) so the
                    pass  # connection goes back to the pool
                return classify(response.status, response.headers, time.time())
        except TimeoutError:
            return Failed(self._timeout_text, timeout=True)
        except aiohttp.ClientError as exc:
            return Failed(f"{type(exc).__name__}: {exc}")
