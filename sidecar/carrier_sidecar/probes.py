"""The sidecar's one small HTTP server: ``/healthz``, ``/readyz`` and ``/metrics``.

Kubernetes probes and Prometheus scrapes hit it every few seconds, so it logs nothing per
request; its answers come from two callables owned by the app, which knows what "alive" and
"ready" mean.

The port is reachable from the pod network, so it must stay cheap under a flood. It runs on
:mod:`.probe_http` (answers made inside the protocol callback, no task per request), and
concurrent ``/metrics`` requests share one rendering (each still gets a rendering made after it
arrived), so 1 000 concurrent scrapes cost a few renders, not 1 000 that starve deliveries and
push ``/healthz`` past the kubelet's 1 s timeout; ``/healthz`` and ``/readyz`` read two flags.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .listen import describe, listen_sockets
from .metrics import Metrics
from .probe_http import Answer, Handler, HttpServer, Request, server_error

log = logging.getLogger("carrier.probes")

# At exit, a request still being answered (a drain call) gets this long, then is closed.
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
        self._server = HttpServer()
        self.port = addr[1]
        self._rendering: dict[str, asyncio.Future[Answer]] = {}  # content type → shared render
        self._server.routes.update(
            {
                "/healthz": lambda _request: _probe("live", self._live),
                "/readyz": lambda _request: _probe("ready", self._ready),
                "/metrics": self._serve_metrics,
            }
        )

    def add_route(self, path: str, handler: Handler) -> None:
        """Serve one more GET path on this port (the drain endpoint, :mod:`drain`)."""
        self._server.routes[path] = handler

    async def start(self) -> None:
        host, port = self._addr
        sockets = listen_sockets(host, port)  # ":PORT": IPv6 and IPv4 (dual-stack clusters)
        await self._server.listen(sockets)
        self.port = int(sockets[0].getsockname()[1])
        log.info(
            "probe server listening",
            extra={"host": host, "port": self.port, "sockets": describe(sockets)},
        )

    async def stop(self) -> None:
        """Stop listening, close idle connections, give a request in flight a grace."""
        await self._server.stop(SHUTDOWN_GRACE)  # idempotent, and a no-op before start

    def _serve_metrics(self, request: Request) -> asyncio.Future[Answer]:
        # Content negotiation as prometheus_client's own handler does it (text or OpenMetrics).
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        shared = self._rendering.get(content_type)
        if shared is None:
            loop = asyncio.get_running_loop()
            shared = loop.create_future()
            self._rendering[content_type] = shared
            # Rendered on the next turn of the loop: the requests already read join this one.
            loop.call_soon(self._render, content_type, encoder, shared)
        return shared

    def _render(
        self,
        content_type: str,
        encoder: Callable[[CollectorRegistry], bytes],
        shared: asyncio.Future[Answer],
    ) -> None:
        del self._rendering[content_type]
        try:
            answer = Answer(200, encoder(self._metrics.registry), content_type)
        except Exception as exc:  # logged once for all the requests sharing this rendering
            answer = server_error(exc)
        shared.set_result(answer)


def _probe(name: str, check: Callable[[], bool]) -> Answer:
    try:
        ok = bool(check())
        reason = "" if ok else f"{name} check returned false"
    except Exception as exc:  # a probe must answer, whatever the check did
        ok, reason = False, f"{name} check raised {type(exc).__name__}: {exc}"
        log.warning("probe check failed", extra={"probe": name, "error": reason})
    body: dict[str, object] = {name: ok}
    if reason:
        body["reason"] = reason
    return Answer.json(200 if ok else 503, body)
