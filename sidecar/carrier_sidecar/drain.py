"""``GET /drain``: the worker's preStop hook asks the sidecar to stop *before* the worker stops.

The kubelet runs a container's preStop hook before its SIGTERM and waits for the answer (up to
the pod's grace period). The injector points the worker's hook here, so the sidecar stops
receiving and delivers what it holds and what is in flight to a worker that is still serving
(within ``CARRIER_SHUTDOWN_TIMEOUT``; the rest is released); only then does the worker get
SIGTERM. The hook reaches the pod IP, i.e. anyone on the pod network can, so the endpoint acts
only on the per-pod token the injector generated (``CARRIER_DRAIN_TOKEN``, compared in constant
time); without a token it does not exist.

After a drain the process stays up, receiving nothing, until its own SIGTERM (then exits 0):
with a native sidecar that comes only after the worker has exited.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Final

from .probe_http import NOT_FOUND, Answer, Request

log = logging.getLogger("carrier.drain")

DRAIN_PATH: Final = "/drain"
TOKEN_HEADER: Final = "X-Carrier-Drain-Token"


class Drain:
    """One drain per process: every matching call waits for the same one to finish."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None
        self.requested = asyncio.Event()
        self.done = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return self._token is not None

    async def handle(self, request: Request) -> Answer:
        if self._token is None:
            return NOT_FOUND
        given = request.headers.get(TOKEN_HEADER.lower(), "").encode()
        if not hmac.compare_digest(given, self._token):
            log.warning("drain refused: wrong or missing token", extra={"peer": request.remote})
            return Answer.json(403, {"drained": False, "reason": f"{TOKEN_HEADER} does not match"})
        if not self.requested.is_set():
            log.info(
                "drain requested (preStop): stopping receiving", extra={"peer": request.remote}
            )
            self.requested.set()
        await self.done.wait()
        return Answer.json(200, {"drained": True})

    async def settle(self, exit_code: int, stop: asyncio.Event) -> int:
        """The shutdown sequence is over: answer the waiting drain calls, and if a drain (not a
        signal) caused it, idle until the signal so the container outlives its worker."""
        self.done.set()
        if self.requested.is_set() and not stop.is_set():
            log.info("drained: idle, receiving nothing, until SIGTERM")
            await stop.wait()
        return exit_code


async def relay(stop: asyncio.Event, drain: Drain, halt: asyncio.Event) -> None:
    """Set ``halt`` (stop receiving) on the first of a signal's ``stop`` or a drain request."""
    waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(drain.requested.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    halt.set()
