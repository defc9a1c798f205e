"""The one place that deletes messages and changes their visibility, in batches of up to 10.

Work arrives as cheap, synchronous calls (``delete``, ``change_visibility``) and leaves as
DeleteMessageBatch / ChangeMessageVisibilityBatch calls: at once when ten are pending, else after
a short linger, and on ``flush``. Pending work is keyed by receipt handle, so it is bounded by the
messages the sidecar holds. Entries SQS reports failed are retried (bounded) and then logged:
never silently dropped.

A delete may carry a ``then`` callback, run once SQS has answered it (done, gone, or given up):
the delivery engine keeps the message's heartbeat lease until then, so a slow delete cannot let the
visibility run out and the message be handed out again after its 2xx. Heartbeat extensions are
therefore sent even while a delete of the same message is pending; one that loses the race to
the delete fails as "receipt handle invalid", which is expected and logged at debug level.

A delete that keeps failing (a credential outage: an expired token, STS unreachable) is retried
past :data:`MAX_ATTEMPTS` for as long as the message's visibility lasts (``lease_end``, the
heartbeat's plan): a delete given up early means the message is delivered again once the
visibility ends, and credential blips often outlast ten seconds.

Visibility changes of one message are sent one at a time, in the order asked: a newer change
waits while an older one is in flight, and replaces an older one still waiting or being retried.
Otherwise a heartbeat extension still in flight could land after the release (visibility 0) or
backoff that followed it, and leave the message invisible, e.g. after the sidecar has exited.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from .aws import error_class, error_code
from .backoff import doubling, equal_jitter
from .metrics_port import MetricsPort, VisibilityReason
from .queue_port import AckPort
from .sqs import MAX_BATCH

log = logging.getLogger("carrier.ack")

LINGER = 0.02
MAX_ATTEMPTS = 6
_RETRY_BASE = 0.2
_RETRY_CAP = 5.0
_GONE = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"})
_REMEMBER_DELETED = (
    1024  # handles recently deleted: a heartbeat refused for one of them is expected
)


@dataclass(slots=True, eq=False)
class _Change:
    handle: str
    message_id: str
    seconds: int
    reason: VisibilityReason


@dataclass(slots=True, eq=False)
class _Delete:
    handle: str
    message_id: str
    then: Callable[[], None] | None = None

    def done(self) -> None:
        then, self.then = self.then, None
        if then is not None:
            then()


_Entry = TypeVar("_Entry", _Delete, _Change)


class Acknowledger:
    def __init__(
        self,
        port: AckPort,
        meter: MetricsPort,
        *,
        linger: float = LINGER,
        pause: Callable[[int], float] | None = None,
    ) -> None:
        self._port = port
        self._meter = meter
        self._linger = linger
        self._pause = pause or _pause  # seconds before retry ``attempt + 1``
        self._deletes: dict[str, _Delete] = {}
        self._deleting: set[str] = set()  # handles whose DeleteMessageBatch is in progress
        self._deleted: OrderedDict[str, None] = OrderedDict()  # bounded memory of recent deletes
        self._changes: dict[str, _Change] = {}
        self._changing: set[str] = set()  # handles with a visibility change in flight
        self._wake = asyncio.Event()
        self._calls: set[asyncio.Task[None]] = set()
        self.lease_end: Callable[[str], float | None] = _no_lease
        """When a held message's visibility ends (the heartbeat's): deletes retry until then."""

    # --- what the flow asks for --------------------------------------------------------------
    def delete(self, handle: str, message_id: str, then: Callable[[], None] | None = None) -> None:
        """Delete the message; ``then`` runs once SQS has answered (or the delete was given up)."""
        change = self._changes.get(handle)
        if change is not None and change.reason != "heartbeat":
            del self._changes[handle]  # a delete supersedes a pending visibility change
        previous = self._deletes.get(handle)
        entry = _Delete(handle, message_id, then)
        if previous is not None and previous.then is not None:
            entry.then = _both(previous.then, then)
        self._deletes[handle] = entry
        if len(self._deletes) >= MAX_BATCH:
            self._send_deletes()
        else:
            self._wake.set()

    def change_visibility(
        self, handle: str, seconds: int, reason: VisibilityReason, message_id: str
    ) -> None:
        if handle in self._deletes and reason != "heartbeat":
            return
        self._changes[handle] = _Change(handle, message_id, seconds, reason)
        if len(self._changes) >= MAX_BATCH:
            self._send_changes()
        else:
            self._wake.set()

    def release(self, handle: str, message_id: str) -> None:
        """Make a message visible again at once (another consumer may take it)."""
        self.change_visibility(handle, 0, "release", message_id)

    # --- the batching loop ---------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._linger)
            self._wake.clear()
            self._send_deletes()
            self._send_changes()

    async def flush(self, wait: float = 10.0) -> None:
        """Send everything pending and wait (bounded) until every call has been answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            self._send_deletes()
            self._send_changes()  # changes waiting for an earlier one of their message, too
            left = deadline - loop.time()
            if not self._calls or left <= 0:
                break
            await asyncio.wait(set(self._calls), timeout=left, return_when=FIRST_COMPLETED)
        calls = set(self._calls)
        for task in calls:
            task.cancel()
        if calls or self._deletes or self._changes:
            log.error(
                "acknowledgements still unsent at shutdown; those messages will be delivered again",
                extra={"calls": len(calls), "unsent": len(self._deletes) + len(self._changes)},
            )
        if calls:
            await asyncio.gather(*calls, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    def _send_deletes(self) -> None:
        while self._deletes:
            batch = list(self._deletes.values())[:MAX_BATCH]
            for entry in batch:
                del self._deletes[entry.handle]
            self._spawn(self._deliver_deletes(batch))

    def _send_changes(self) -> None:
        ready = [c for c in self._changes.values() if c.handle not in self._changing]
        for start in range(0, len(ready), MAX_BATCH):
            batch = ready[start : start + MAX_BATCH]
            for change in batch:
                del self._changes[change.handle]
                self._changing.add(change.handle)
            self._spawn(self._deliver_changes(batch))

    # --- one batch, with bounded retries -------------------------------------------------------
    def _split_or_give_up(
        self,
        what: str,
        pending: list[Any],
        exc: BaseException,
        again: Callable[[list[Any]], Coroutine[Any, Any, None]],
    ) -> None:
        """One refused entry must not sink its batch: retry each entry alone, once."""
        if len(pending) > 1:
            for entry in pending:
                self._spawn(again([entry]))
            return
        (entry,) = pending
        log.error(
            f"SQS refused to {what} the message",
            extra={"message_id": entry.message_id, "code": error_code(exc), "error": repr(exc)},
        )

    async def _deliver_deletes(self, batch: list[_Delete]) -> None:
        """One batch, retried (bounded); every entry's ``then`` runs when it is settled."""
        for entry in batch:
            self._deleting.add(entry.handle)
        handed_over: set[_Delete] = set()
        try:
            handed_over = await self._delete_with_retries(batch)
        finally:
            for entry in batch:
                if entry not in handed_over:
                    self._deleting.discard(entry.handle)
                    entry.done()

    async def _delete_with_retries(self, batch: list[_Delete]) -> set[_Delete]:
        """Returns the entries handed to single-entry retries: they settle there."""

        async def call(pending: list[_Delete]) -> dict[int, dict[str, Any]]:
            return await self._port.delete_batch([e.handle for e in pending])

        def sort(pending: list[_Delete], failures: dict[int, dict[str, Any]]) -> list[_Delete]:
            self._meter.deleted(len(pending) - len(failures))
            retry = []
            for index, entry in enumerate(pending):
                failure = failures.get(index)
                if failure is None:
                    self._remember_deleted(entry.handle)
                elif _retryable(failure):
                    retry.append(entry)
                else:
                    _log_gone("delete", entry.message_id, failure)
            return retry

        def keep(retry: list[_Delete], attempt: int, pause: float) -> list[_Delete]:
            # Past the attempts, a delete goes on while the message stays invisible.
            return retry if attempt < MAX_ATTEMPTS else self._still_visible(retry, pause, attempt)

        return await self._with_retries(
            "DeleteMessageBatch", "delete", batch, call, sort, keep, self._deliver_deletes
        )

    def _still_visible(self, pending: list[_Delete], pause: float, attempt: int) -> list[_Delete]:
        """The entries whose visibility outlasts the next pause; the others are given up."""
        now = time.monotonic()  # the heartbeat's clock
        keep = []
        for entry in pending:
            end = self.lease_end(entry.handle)
            if end is not None and end - now > pause:
                keep.append(entry)
            else:
                log.error(
                    "could not delete a delivered message; it will be delivered again",
                    extra={"message_id": entry.message_id, "attempts": attempt},
                )
        return keep

    def _remember_deleted(self, handle: str) -> None:
        self._deleted[handle] = None
        if len(self._deleted) > _REMEMBER_DELETED:
            self._deleted.popitem(last=False)

    def _lost_to_a_delete(self, change: _Change) -> bool:
        """A heartbeat that raced its message's delete and lost: expected, nothing to report."""
        return change.reason == "heartbeat" and (
            change.handle in self._deleting or change.handle in self._deleted
        )

    async def _deliver_changes(self, batch: list[_Change]) -> None:
        """One batch, retried (bounded); then the next change of each message may go."""
        handed_over: set[_Change] = set()
        try:
            handed_over = await self._changes_with_retries(batch)
        finally:
            waiting = False
            for change in batch:
                if change not in handed_over:
                    self._changing.discard(change.handle)
                    waiting = waiting or change.handle in self._changes
            if waiting:
                self._wake.set()

    async def _changes_with_retries(self, batch: list[_Change]) -> set[_Change]:
        """Returns the entries handed to single-entry retries: they settle there."""

        async def call(pending: list[_Change]) -> dict[int, dict[str, Any]]:
            return await self._port.change_visibility_batch(
                [(c.handle, c.seconds) for c in pending]
            )

        def sort(pending: list[_Change], failures: dict[int, dict[str, Any]]) -> list[_Change]:
            retry = []
            done: dict[VisibilityReason, int] = {}
            for index, change in enumerate(pending):
                failure = failures.get(index)
                if failure is None:
                    done[change.reason] = done.get(change.reason, 0) + 1
                elif self._lost_to_a_delete(change):
                    log.debug("heartbeat after the delete", extra={"message_id": change.message_id})
                elif _retryable(failure):
                    retry.append(change)
                else:
                    _log_gone("change visibility of", change.message_id, failure)
            for reason, count in done.items():
                self._meter.visibility_changed(count, reason)
            return retry

        def keep(retry: list[_Change], attempt: int, _pause: float) -> list[_Change]:
            # A newer change of the same message is waiting: it replaces this one.
            pending = [c for c in retry if c.handle not in self._changes]
            if attempt < MAX_ATTEMPTS:
                return pending
            for change in pending:
                log.error(
                    "could not change a message's visibility; it returns when its current "
                    "visibility ends",
                    extra={"message_id": change.message_id, "reason": change.reason},
                )
            return []

        return await self._with_retries(
            "ChangeMessageVisibilityBatch",
            "change visibility of",
            batch,
            call,
            sort,
            keep,
            self._deliver_changes,
        )

    async def _with_retries(
        self,
        action: str,
        what: str,
        batch: list[_Entry],
        call: Callable[[list[_Entry]], Awaitable[dict[int, dict[str, Any]]]],
        sort: Callable[[list[_Entry], dict[int, dict[str, Any]]], list[_Entry]],
        keep: Callable[[list[_Entry], int, float], list[_Entry]],
        again: Callable[[list[_Entry]], Coroutine[Any, Any, None]],
    ) -> set[_Entry]:
        """One batch call, retried: ``sort`` settles an answer's entries and returns those to
        retry, ``keep`` decides which of them get another attempt after ``pause``. A call SQS
        refuses as a whole is split into single-entry calls (``again``); returns those entries,
        which settle there."""
        pending = batch
        for attempt in itertools.count(1):
            try:
                failures = await call(pending)
            except Exception as exc:
                if _refused(exc):
                    self._split_or_give_up(what, pending, exc, again)
                    return set(pending) if len(pending) > 1 else set()
                log.warning(
                    f"{action} failed, retrying",
                    extra={"error": repr(exc), "entries": len(pending), "attempt": attempt},
                )
                retry = pending
            else:
                retry = sort(pending, failures)
            pause = self._pause(attempt)
            pending = keep(retry, attempt, pause)
            if not pending:
                return set()
            await asyncio.sleep(pause)
        return set()  # unreachable: the loop ends when nothing is pending


def _both(first: Callable[[], None], second: Callable[[], None] | None) -> Callable[[], None]:
    def run() -> None:
        first()
        if second is not None:
            second()

    return run


def _refused(exc: BaseException) -> bool:
    """SQS refused the whole call (e.g. one entry's visibility past 12 h): retrying as is won't
    help. Throttling, faults and credential trouble (expired, refused, not obtainable) pass."""
    return error_code(exc) is not None and error_class(exc) not in {"transient", "credentials"}


def _no_lease(_handle: str) -> float | None:
    return None


def _retryable(failure: dict[str, Any]) -> bool:
    return not failure.get("SenderFault") and failure.get("Code") not in _GONE


def _log_gone(what: str, message_id: str, failure: dict[str, Any]) -> None:
    code = failure.get("Code")
    if code in _GONE:
        msg = f"cannot {what} the message: receipt handle invalid or expired (received again elsewhere, or already deleted)"
    else:
        msg = f"SQS refused to {what} the message"
    log.error(msg, extra={"message_id": message_id, "code": code, "detail": failure.get("Message")})


def _pause(attempt: int) -> float:
    return equal_jitter(doubling(_RETRY_BASE, _RETRY_CAP, attempt - 1))


__all__ = ["Acknowledger", "error_code"]
