"""The sidecar's one small HTTP server: ``/healthz``, ``/readyz`` and ``/metrics``.

Kubernetes probes and Prometheus scrapes hit it every few seconds, so it logs nothing per
request; its answers come from two callables owned by the app, which knows what "alive" and
"ready" mean.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Final

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from .metrics import Metrics

log = logging.getLogger("carrier.probes")

# Probes and scrapers hold keep-alive connections; never let them delay the pod's exit.
SHUTDOWN_GRACE: Final = 1.0


class ProbeServer:
    """Serves the probes and metrics on ``addr`` (port 0 picks a free port, see :attr:`port`)."""

    def __init__(
        self,
        addr: tuple[str, int],
        metrics: Metrics,
        live: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        self._addr = addr
        self._metrics = metrics
        self._live = live
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self.port = addr[1]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._serve_metrics)
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_GRACE
        )
        await runner.setup()
        host, port = self._addr
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("probe server listening", extra={"host": host, "port": self.port})

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return _probe("live", self._live)

    async def _readyz(self, _request: web.Request) -> web.Response:
        return _probe("ready", self._ready)

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        # Content negotiation as prometheus_client's own handler does it (text or OpenMetrics).
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(self._metrics.registry))
        response.headers["Content-Type"] = content_type
        return response


def _probe(name: str, check: Callable[[], bool]) -> web.Response:
    try:
        ok = bool(check())
        reason = "" if ok else f"{name} check returned false"
    except Exception as exc:  # a probe must answer, whatever the check did
        ok, reason = False, f"{name} check raised {type(exc).__name__}: {exc}"
        log.warning("probe check failed", extra={"probe": name, "error": reason})
    body: dict[str, object] = {name: ok}
    if reason:
        body["reason"] = reason
    return web.Response(
        status=200 if ok else 503,
        text=json.dumps(body),
        content_type="application/json",
    )
