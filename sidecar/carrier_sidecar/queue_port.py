"""What the delivery core asks of a queue, as Protocols: :class:`sqs.SqsPort` implements them
over aiobotocore, and the unit tests' in-memory queue implements them with no I/O.

The acknowledger and the receive loop depend on these, not on aiobotocore, so their intricate
parts (batching, retries, splitting a refused batch, the order of visibility changes) can be
tested against a queue that fails exactly when a test says so.
"""

from __future__ import annotations

from typing import Any, Protocol

from .messages import Message

Failures = dict[int, dict[str, Any]]
"""A batch call's failed entries by index, as SQS reports them (``Code``, ``SenderFault`` ...)."""


class AckPort(Protocol):
    """The two batch calls that settle held messages."""

    async def delete_batch(self, handles: list[str]) -> Failures: ...

    async def change_visibility_batch(self, items: list[tuple[str, int]]) -> Failures: ...


class QueuePort(AckPort, Protocol):
    """Receive, then settle."""

    async def receive(self, max_n: int, wait: float, visibility: float | None) -> list[Message]: ...
