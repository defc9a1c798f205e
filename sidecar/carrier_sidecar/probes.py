"""The sidecar's one small HTTP server: ``/healthz``, ``/readyz`` and ``/metrics``.

Kubernetes probes and Prometheus scrapes hit it every few seconds, so it logs nothing per
request; its answers come from two callables owned by the app, which knows what "alive" and
"ready" mean. It runs on aiohttp's low-level server (``aiohttp.web_server``) rather than
``aiohttp.web``: three fixed routes need no router, and ``aiohttp.web`` would load the application,
routing and static-file machinery (~1 MB of resident memory) for nothing.

The port is reachable from the pod network, so it must stay cheap under a flood: concurrent
``/metrics`` requests share one rendering (each still gets a rendering made after it arrived),
so 1 000 concurrent scrapes cost a few renders, not 1 000 that starve deliveries and push
``/healthz`` past the kubelet's 1 s timeout; ``/healthz`` and ``/readyz`` read two flags.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp.web_request import BaseRequest
from aiohttp.web_response import Response
from aiohttp.web_server import Server
from prometheus_client.exposition import choose_encoder

from .listen import describe, listen_sockets
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
        self._server: Server | None = None
        self._listeners: list[asyncio.AbstractServer] = []
        self.port = addr[1]
        self._rendering: dict[str, asyncio.Future[bytes]] = {}  # content type → shared render
        self._routes: dict[str, Callable[[BaseRequest], Awaitable[Response]]] = {
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._serve_metrics,
        }

    def add_route(self, path: str, handler: Callable[[BaseRequest], Awaitable[Response]]) -> None:
        """Serve one more GET path on this port (the drain endpoint, :mod:`drain`)."""
        self._routes[path] = handler

    async def start(self) -> None:
        server = Server(self._dispatch, access_log=None)
        host, port = self._addr
        loop = asyncio.get_running_loop()
        sockets = listen_sockets(host, port)  # ":PORT": IPv6 and IPv4 (dual-stack clusters)
        for sock in sockets:
            self._listeners.append(await loop.create_server(server, sock=sock))
        self._server = server
        self.port = int(sockets[0].getsockname()[1])
        log.info(
            "probe server listening",
            extra={"host": host, "port": self.port, "sockets": describe(sockets)},
        )

    async def stop(self) -> None:
        """Stop listening, close idle keep-alive connections, give a request in flight a grace."""
        listeners, self._listeners = self._listeners, []
        server, self._server = self._server, None
        for listener in listeners:
            listener.close()
        if server is not None:
            await asyncio.sleep(0)  # let requests already accepted start, as aiohttp's runner does
            server.pre_shutdown()
            await server.shutdown(SHUTDOWN_GRACE)
        for listener in listeners:
            await listener.wait_closed()

    async def _dispatch(self, request: BaseRequest) -> Response:
        route = self._routes.get(request.path)
        if route is None:
            return Response(status=404, text="404: Not Found")
        if request.method not in {"GET", "HEAD"}:
            return Response(status=405, text="405: Method Not Allowed", headers={"Allow": "GET"})
        return await route(request)

    async def _healthz(self, _request: BaseRequest) -> Response:
        return _probe("live", self._live)

    async def _readyz(self, _request: BaseRequest) -> Response:
        return _probe("ready", self._ready)

    async def _serve_metrics(self, request: BaseRequest) -> Response:
        # Content negotiation as prometheus_client's own handler does it (text or OpenMetrics).
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        shared = self._rendering.get(content_type)
        if shared is None:
            shared = asyncio.get_running_loop().create_future()
            self._rendering[content_type] = shared
            try:
                await asyncio.sleep(0)  # let the requests already read join this rendering
            finally:  # rendered even if this request was cancelled: the others wait for it
                del self._rendering[content_type]
                try:
                    shared.set_result(encoder(self._metrics.registry))
                except Exception as exc:
                    shared.set_exception(exc)
        response = Response(body=await asyncio.shield(shared))
        response.headers["Content-Type"] = content_type
        return response


def _probe(name: str, check: Callable[[], bool]) -> Response:
    try:
        ok = bool(check())
        reason = "" if ok else f"{name} check returned false"
    except Exception as exc:  # a probe must answer, whatever the check did
        ok, reason = False, f"{name} check raised {type(exc).__name__}: {exc}"
        log.warning("probe check failed", extra={"probe": name, "error": reason})
    body: dict[str, object] = {name: ok}
    if reason:
        body["reason"] = reason
    return Response(
        status=200 if ok else 503,
        text=json.dumps(body),
        content_type="application/json",
    )
