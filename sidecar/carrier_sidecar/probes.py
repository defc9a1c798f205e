"""The sidecar's one small HTTP server: ``/healthz``, ``/readyz`` and ``/metrics``.

Kubernetes probes and Prometheus scrapes hit it every few seconds, so it logs nothing per
request; its answers come from two callables owned by the app, which knows what "alive" and
"ready" mean.

The port is reachable from the pod network, so it must stay cheap under a flood. It runs on
:mod:`.probe_http` (answers made inside the protocol callback, no task per request), and
concurrent ``/metrics`` requests share one rendering (each still gets a rendering made after it
arrived), so 1 000 concurrent scrapes cost a few renders, not 1 000 that starve deliveries and
push ``/healthz`` past the kubelet's 1 s timeout; ``/healthz`` and ``/readyz`` read two flags.
The ``carrier-sidecar`` process serves the port from a process of its own
(:mod:`.probe_process`); :class:`ProbeServer` is the same port inside the event loop, for
:func:`.app.run` embedded in another program.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .listen import describe, listen_sockets
from .metrics import Metrics
from .probe_checks import answer, evaluate, warn
from .probe_http import Answer, Handler, HttpServer, Request, server_error

log = logging.getLogger("carrier.probes")

# At exit, a request still being answered (a drain call) gets this long, then is closed.
SHUTDOWN_GRACE: Final = 1.0


def log_listening(host: str, sockets: list[socket.socket]) -> int:
    """One line for the port the probes reach; returns the port (0 asked for: the one bound)."""
    port = int(sockets[0].getsockname()[1])
    log.info(
        "probe server listening",
        extra={"host": host, "port": port, "sockets": describe(sockets)},
    )
    return port


class SharedRendering:
    """``GET /metrics``: requests already read when a rendering starts share it."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._rendering: dict[str, asyncio.Future[Answer]] = {}  # content type → shared render

    def serve(self, request: Request) -> asyncio.Future[Answer]:
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
            rendered = Answer(200, encoder(self._metrics.registry), content_type)
        except Exception as exc:  # logged once for all the requests sharing this rendering
            rendered = server_error(exc)
        shared.set_result(rendered)


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
        self._server = HttpServer()
        self.port = addr[1]
        self._server.routes.update(
            {
                "/healthz": lambda _request: _answer_now("live", live),
                "/readyz": lambda _request: _answer_now("ready", ready),
                "/metrics": SharedRendering(metrics).serve,
            }
        )

    def add_route(self, path: str, handler: Handler) -> None:
        """Serve one more GET path on this port (the drain endpoint, :mod:`drain`)."""
        self._server.routes[path] = handler

    async def start(self) -> None:
        host, port = self._addr
        sockets = listen_sockets(host, port)  # ":PORT": IPv6 and IPv4 (dual-stack clusters)
        await self._server.listen(sockets)
        self.port = log_listening(host, sockets)

    async def stop(self) -> None:
        """Stop listening, close idle connections, give a request in flight a grace."""
        await self._server.stop(SHUTDOWN_GRACE)  # idempotent, and a no-op before start


def _answer_now(name: str, check: Callable[[], bool]) -> Answer:
    """Evaluated per request, as the kubelet asks: a check that raises warns each time."""
    outcome = evaluate(name, check)
    warn(name, outcome)
    return answer(name, outcome)
