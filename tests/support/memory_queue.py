"""An in-memory queue that implements the sidecar's :class:`QueuePort`, for unit tests of the
delivery core without I/O.

It keeps what SQS keeps that the core relies on: a receipt handle per receive, a receive count,
visibility (on a clock the test drives, so nothing waits), deletes of unknown handles failing
``ReceiptHandleIsInvalid`` per entry. A test makes it fail exactly as SQS can: a whole batch
call raising (``fail_calls``), or single entries failing (``fail_entries``). Every batch call is
recorded in :attr:`calls`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from carrier_sidecar.messages import Message
from carrier_sidecar.queue_port import Failures


def client_error(code: str, action: str, *, sender: bool = True) -> ClientError:
    """What aiobotocore raises for an SQS error answer."""
    return ClientError(
        {"Error": {"Code": code, "Message": code, "Type": "Sender" if sender else "Receiver"}},
        action,
    )


@dataclass
class Stored:
    body: str
    message_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    receives: int = 0
    visible_at: float = 0.0
    handle: str | None = None


class MemoryQueue:
    def __init__(self) -> None:
        self.now = 0.0
        self.messages: dict[str, Stored] = {}
        self.calls: list[tuple[str, list[Any]]] = []
        self.fail_calls: list[BaseException] = []  # raised by the next batch calls, in order
        self.fail_entries: dict[str, str] = {}  # handle → error code, once
        self._ids = itertools.count(1)

    # --- what a test does ---------------------------------------------------------------------
    def send(self, body: str, **attributes: Any) -> str:
        message_id = f"m{next(self._ids)}"
        self.messages[message_id] = Stored(body, message_id, dict(attributes))
        return message_id

    def fill(self, bodies: Iterable[str]) -> list[str]:
        return [self.send(body) for body in bodies]

    def visible(self) -> list[str]:
        return [m.body for m in self.messages.values() if m.visible_at <= self.now]

    def in_flight(self) -> list[str]:
        return [m.body for m in self.messages.values() if m.visible_at > self.now]

    def calls_of(self, action: str) -> list[list[Any]]:
        return [entries for name, entries in self.calls if name == action]

    # --- the port -----------------------------------------------------------------------------
    async def receive(self, max_n: int, wait: float, visibility: float | None) -> list[Message]:
        taken: list[Message] = []
        for stored in self.messages.values():
            if len(taken) == max_n:
                break
            if stored.visible_at <= self.now:
                stored.receives += 1
                stored.visible_at = self.now + (30 if visibility is None else visibility)
                stored.handle = f"{stored.message_id}#{stored.receives}"
                taken.append(self._as_message(stored))
        return taken

    async def delete_batch(self, handles: list[str]) -> Failures:
        self._call("DeleteMessageBatch", handles)
        failures: Failures = {}
        for index, handle in enumerate(handles):
            stored = self._entry(index, handle, failures)
            if stored is not None:
                del self.messages[stored.message_id]
        return failures

    async def change_visibility_batch(self, items: list[tuple[str, int]]) -> Failures:
        self._call("ChangeMessageVisibilityBatch", items)
        failures: Failures = {}
        for index, (handle, seconds) in enumerate(items):
            stored = self._entry(index, handle, failures)
            if stored is not None:
                stored.visible_at = self.now + seconds
        return failures

    # --- internals ----------------------------------------------------------------------------
    def _call(self, action: str, entries: list[Any]) -> None:
        self.calls.append((action, list(entries)))
        if self.fail_calls:
            raise self.fail_calls.pop(0)

    def _entry(self, index: int, handle: str, failures: Failures) -> Stored | None:
        code = self.fail_entries.pop(handle, None)
        stored = next((m for m in self.messages.values() if m.handle == handle), None)
        if code is None and stored is None:
            code = "ReceiptHandleIsInvalid"
        if code is not None:
            sender = code != "InternalError"
            failures[index] = {"Id": str(index), "Code": code, "SenderFault": sender}
            return None
        return stored

    def _as_message(self, stored: Stored) -> Message:
        return {
            "MessageId": stored.message_id,
            "ReceiptHandle": stored.handle,
            "Body": stored.body,
            "Attributes": {
                "ApproximateReceiveCount": str(stored.receives),
                **{k: str(v) for k, v in stored.attributes.items()},
            },
        }
