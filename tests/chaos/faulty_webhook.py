"""A webhook that fails a seeded fraction of deliveries and writes down every answer it gave.

It rides on the shared :class:`~tests.support.servers.WebhookRecorder` (a real aiohttp server)
and only decides the answer. Each sidecar incarnation posts to ``?inc=N``, so every delivery
is tied to the process that made it: the base of duplicate attribution.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.servers import Received

FAULTS = ("http_5xx", "http_429", "reset", "hang")


@dataclass(frozen=True)
class Delivery:
    """One POST and how it was answered; ``outcome`` is ``ok`` or one of :data:`FAULTS`."""

    id: str
    incarnation: int
    t_start: float
    t_end: float
    outcome: str
    group: str | None = None
    seq: int | None = None
    receive_count: int | None = None


@dataclass
class FaultyWebhook:
    """``fault_rate`` of answers are faults, spread evenly over :data:`FAULTS`."""

    seed: int
    fault_rate: float = 0.2
    retry_after: int = 1
    hang_for: float = 2.0
    deliveries: list[Delivery] = field(default_factory=list)
    delivered: set[str] = field(default_factory=set)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def faults(self) -> Counter[str]:
        return Counter(d.outcome for d in self.deliveries if d.outcome != "ok")

    def ok_count(self) -> int:
        return sum(1 for d in self.deliveries if d.outcome == "ok")

    async def __call__(self, request: web.Request, received: Received) -> web.StreamResponse:
        t_start = time.monotonic()
        doc = json.loads(received.body)
        incarnation = int(request.query.get("inc", "-1"))
        roll = self._rng.random()
        outcome = "ok" if roll >= self.fault_rate else FAULTS[int(roll / self.fault_rate * 4)]
        response: web.StreamResponse
        if outcome == "ok":
            response = web.Response(status=self._rng.choice((200, 201, 202, 204)))
        elif outcome == "http_5xx":
            response = web.Response(status=self._rng.choice((500, 502, 503, 504)))
        elif outcome == "http_429":
            response = web.Response(status=429, headers={"Retry-After": str(self.retry_after)})
        elif outcome == "reset":
            if request.transport is not None:
                request.transport.abort()
            response = web.Response(status=500)
        else:  # hang past the sidecar's request timeout, then answer a failure nobody reads
            await asyncio.sleep(self.hang_for)
            response = web.Response(status=500)
        self.deliveries.append(
            Delivery(
                id=str(doc["id"]),
                incarnation=incarnation,
                t_start=t_start,
                t_end=time.monotonic(),
                outcome=outcome,
                group=doc.get("group"),
                seq=doc.get("seq"),
                receive_count=_int(request.headers.get("X-Carrier-Receive-Count")),
            )
        )
        if outcome == "ok":
            self.delivered.add(str(doc["id"]))
            self.progress.set()
        return response


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None
