"""Read a binding's queue depth with aiobotocore, and say plainly why it could not be read.

Credentials come from the operator's own AWS chain (IRSA web identity, env, instance profile):
the operator checks that *it* can see the queue, which is what a person reading the
``QueueReachable`` condition needs. Every read is bounded (connect/read timeouts, one retry, an
overall deadline); every failure becomes a :class:`QueueProbe` with a reason, never an exception.
The same read takes the queue's ``RedrivePolicy`` and its dead-letter queue's depth
(:mod:`.dead_letters`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from carrier_sidecar.endpoints import install_lean_resolver
from carrier_sidecar.settings import Settings

from .dead_letters import REDRIVE_POLICY, DeadLetter, read_dead_letter
from .queue_failures import KNOWN, QueueCall, describe
from .queue_place import region_for

logger = logging.getLogger(__name__)

SIDECAR_IDENTITY = (
    "The sidecar reads the queue with the pod's own identity, not the operator's: pods are "
    "still admitted (set spec.queueCheck: false to stop this check)"
)
READ_QUEUE = QueueCall(
    action="GetQueueAttributes", verb="reading", other="QueueError", identity=SIDECAR_IDENTITY
)
DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True)
class QueueProbe:
    """One read of a queue: reachable with its depth, or why not (``reason`` is CamelCase)."""

    reachable: bool
    reason: str
    message: str
    url: str | None = None
    visible: int | None = None
    in_flight: int | None = None
    delayed: int | None = None
    dead_letter: DeadLetter | None = None  # read along with a reachable queue


class QueueReader:
    """Reads queue attributes; keeps one client per (region, endpoint) for the operator's life."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._session = get_session()
        install_lean_resolver(self._session)  # SQS's endpoints only: ~7 MB less for good
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[tuple[str | None, str | None], Any] = {}
        self._lock = asyncio.Lock()
        self._config = AioConfig(
            connect_timeout=min(3.0, timeout),
            read_timeout=timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        )

    async def _client(self, region: str | None, endpoint: str | None) -> Any:
        key = (region, endpoint)
        async with self._lock:
            if key not in self._clients:
                creator = self._session.create_client(
                    "sqs", region_name=region, endpoint_url=endpoint, config=self._config
                )
                self._clients[key] = await self._stack.enter_async_context(creator)
            return self._clients[key]

    async def close(self) -> None:
        async with self._lock:
            self._clients.clear()
            await self._stack.aclose()

    async def probe(self, settings: Settings) -> QueueProbe:
        """The queue's depth, or a probe saying why it could not be read."""
        try:
            async with asyncio.timeout(self.timeout * 2):
                return await self._read(settings)
        except KNOWN as exc:
            return _failed(*describe(exc, settings, READ_QUEUE, timeout=self.timeout * 2))
        except Exception as exc:  # a condition, never a crash: but say it was unexpected
            logger.exception(
                "unexpected error reading the queue", extra={"queue": settings.queue_label}
            )
            return _failed(*describe(exc, settings, READ_QUEUE))

    async def _read(self, settings: Settings) -> QueueProbe:
        client = await self._client(region_for(settings), settings.sqs_endpoint)
        url = settings.sqs_queue_url
        if url is None:
            answer = await client.get_queue_url(QueueName=settings.sqs_queue_name)
            url = str(answer["QueueUrl"])
        answer = await client.get_queue_attributes(
            QueueUrl=url, AttributeNames=[*DEPTH_ATTRIBUTES, REDRIVE_POLICY]
        )
        attrs = answer.get("Attributes", {})
        visible, in_flight, delayed = (int(attrs.get(name, 0)) for name in DEPTH_ATTRIBUTES)
        dead_letter = await read_dead_letter(
            client, url, attrs.get(REDRIVE_POLICY), DEPTH_ATTRIBUTES
        )
        return QueueProbe(
            reachable=True,
            reason="QueueFound",
            message=f"queue {settings.queue_label} answers: {visible} visible, "
            f"{in_flight} in flight, {delayed} delayed",
            url=url,
            visible=visible,
            in_flight=in_flight,
            delayed=delayed,
            dead_letter=dead_letter,
        )

    async def send(self, settings: Settings, **request: Any) -> str:
        """SendMessage to the binding's queue with the operator's identity (the scheduler's
        ticks); the MessageId. Bounded like a probe; botocore's errors are the caller's."""
        async with asyncio.timeout(self.timeout * 2):
            client = await self._client(region_for(settings), settings.sqs_endpoint)
            url = settings.sqs_queue_url
            if url is None:
                answer = await client.get_queue_url(QueueName=settings.sqs_queue_name)
                url = str(answer["QueueUrl"])
            sent = await client.send_message(QueueUrl=url, **request)
        return str(sent["MessageId"])


def _failed(reason: str, message: str) -> QueueProbe:
    return QueueProbe(reachable=False, reason=reason, message=message)
