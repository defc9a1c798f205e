"""The webhook health gate, with the Go Carrier's variables.

Receiving waits until the worker's health endpoint answers 2xx, so a worker that is still starting
does not burn receive counts (and push messages to the dead-letter queue); afterwards
``CARRIER_WEBHOOK_OFFLINE_THRESHOLD_COUNT`` consecutive failed checks end the sidecar, so that
Kubernetes restarts the pod. The app owns what happens then (release in-flight work, exit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import aiohttp

from .settings import Settings

log = logging.getLogger("carrier.health")

# While waiting for the first success, check fast and back off gently: a worker is seen at most
# min(interval, 5s) after it comes up, and one that takes minutes costs one GET every 5s.
FIRST_DELAY: Final = 0.25
MAX_START_DELAY: Final = 5.0


class WebhookOffline(Exception):
    """The health endpoint failed the threshold count of consecutive checks."""

    def __init__(self, endpoint: str, failures: int, last_error: str) -> None:
        super().__init__(
            f"webhook offline: {endpoint} failed {failures} consecutive health checks "
            f"(last: {last_error})"
        )
        self.endpoint = endpoint
        self.failures = failures


class WebhookHealthGate:
    """Gate receiving on ``CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT``; a no-op when it is unset."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._endpoint = settings.webhook_health_check_endpoint
        self._interval = settings.webhook_health_check_interval
        self._threshold = settings.webhook_offline_threshold_count
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=settings.webhook_health_check_timeout)
        # Same TLS rule as the webhook itself; otherwise the session's connector decides.
        self._request_options: dict[str, Any] = {"timeout": self._timeout}
        if settings.webhook_tls_insecure_skip_verify:
            self._request_options["ssl"] = False
        self.online = self._endpoint is None

    async def wait_online(self, stop: asyncio.Event) -> bool:
        """Check until the first 2xx (True) or until ``stop`` is set (False)."""
        endpoint = self._endpoint
        if endpoint is None:
            self.online = True
            return True
        cap = min(self._interval, MAX_START_DELAY)
        delay = min(FIRST_DELAY, cap)
        started = time.monotonic()
        checks = 0
        stopped = asyncio.ensure_future(stop.wait())
        check: asyncio.Future[str | None] | None = None
        try:
            while not stop.is_set():
                checks += 1
                check = asyncio.ensure_future(self._check(endpoint))
                await asyncio.wait({check, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not check.done():
                    return False
                error = check.result()
                check = None
                if error is None:
                    self.online = True
                    log.info(
                        "webhook online",
                        extra={
                            "endpoint": endpoint,
                            "checks": checks,
                            "waited_seconds": round(time.monotonic() - started, 3),
                        },
                    )
                    return True
                log.log(
                    logging.INFO if checks == 1 else logging.DEBUG,
                    "waiting for the webhook health endpoint",
                    extra={"endpoint": endpoint, "checks": checks, "error": error},
                )
                await asyncio.wait({stopped}, timeout=delay)
                delay = min(delay * 2, cap)
            return False
        finally:
            await _cancel(stopped, check)

    async def watch(self) -> None:
        """Check every interval; raise :class:`WebhookOffline` at the threshold of failures."""
        endpoint = self._endpoint
        if endpoint is None:
            await asyncio.Event().wait()  # nothing to watch: wait until cancelled
            return
        loop = asyncio.get_running_loop()
        failures = 0
        due = loop.time() + self._interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            # A fixed rate like the Go Carrier's ticker, without piling up after a slow check.
            due = max(due + self._interval, loop.time())
            error = await self._check(endpoint)
            if error is None:
                if failures or not self.online:
                    log.info(
                        "webhook health recovered",
                        extra={"endpoint": endpoint, "failures": failures},
                    )
                failures = 0
                self.online = True
                continue
            failures += 1
            if failures >= self._threshold:
                self.online = False
                log.error(
                    "webhook offline",
                    extra={"endpoint": endpoint, "failures": failures, "error": error},
                )
                raise WebhookOffline(endpoint, failures, error)
            log.warning(
                "webhook health check failed",
                extra={
                    "endpoint": endpoint,
                    "failures": failures,
                    "threshold": self._threshold,
                    "error": error,
                },
            )

    async def _check(self, endpoint: str) -> str | None:
        """One GET: None when it answered 2xx, else why not (one line)."""
        try:
            async with self._session.get(endpoint, **self._request_options) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except TimeoutError:
            return f"no answer within {self._timeout.total:g}s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}".splitlines()[0]


async def _cancel(*tasks: asyncio.Future[Any] | None) -> None:
    pending = {t for t in tasks if t is not None and not t.done()}
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
