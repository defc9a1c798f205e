"""The operator's HTTP port: liveness (``GET /healthz``) and metrics (``GET /metrics``), on every
address family.

kopf's own ``liveness_endpoint`` binds exactly the host in its URL through aiohttp's TCPSite:
``0.0.0.0`` is IPv4 only, and ``[::]`` is IPv6 only (asyncio sets ``IPV6_V6ONLY`` on every
IPv6 socket it opens). On an IPv6-only cluster the kubelet's probe then never connects and the
operator is restarted over and over. So the operator serves liveness itself, on the sockets
:mod:`carrier_sidecar.listen` opens for ``:PORT``, with what kopf's endpoint reported (a JSON
object of probe results; here the number of bindings tracked). It answers from the operator's
own event loop: if the loop is stuck, the probe times out, which is what liveness is for.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp.web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from carrier_sidecar.listen import describe, listen_sockets

from .config import OperatorConfigError

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
DEPTH_ROUTE = "/bindings/{namespace}/{name}/queue"  # autoscaling.DEPTH_PATH (KEDA's metrics-api)

DepthAnswer = Callable[[str, str], tuple[int, Mapping[str, Any]]]

METRICS_PATH = "/metrics"


@contextlib.asynccontextmanager
async def serving_liveness(
    port: int,
    report: Callable[[], Mapping[str, Any]],
    host: str = "",
    depth: DepthAnswer | None = None,
    metrics: CollectorRegistry | None = None,
) -> AsyncIterator[int]:
    """Serve ``GET /healthz`` → ``report()`` as JSON, and ``GET /metrics`` → ``metrics`` in the
    Prometheus text format (OpenMetrics if the scraper asks), until the block exits; yields
    the port. With ``depth``, also a binding's queue depth for KEDA (``DEPTH_ROUTE``)."""

    async def healthz(_request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(dict(report()))

    async def scrape(request: aiohttp.web.Request) -> aiohttp.web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = aiohttp.web.Response(body=encoder(registry))
        response.headers["Content-Type"] = content_type
        return response

    app = aiohttp.web.Application()
    app.router.add_get(LIVENESS_PATH, healthz)
    if depth is not None:

        async def queue(request: aiohttp.web.Request) -> aiohttp.web.Response:
            code, body = depth(request.match_info["namespace"], request.match_info["name"])
            return aiohttp.web.json_response(dict(body), status=code)

        app.router.add_get(DEPTH_ROUTE, queue)
    if metrics is not None:
        registry = metrics
        app.router.add_get(METRICS_PATH, scrape)
    runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        try:
            sockets = listen_sockets(host, port)
        except OSError as exc:  # a busy port is a configuration error: one line, exit 2
            raise OperatorConfigError(
                f"CARRIER_OPERATOR_LIVENESS_PORT: cannot listen on :{port}: {exc.strerror}"
            ) from None
        for sock in sockets:
            await aiohttp.web.SockSite(runner, sock).start()
        logger.info(
            "liveness endpoint listening",
            extra={"address": describe(sockets), "path": LIVENESS_PATH},
        )
        yield int(sockets[0].getsockname()[1])
    finally:
        await runner.cleanup()
