"""One background task that reads every binding's queue on a schedule and counts its pods.

Why not a kopf timer per binding: kopf puts a finalizer on every object with a timer or daemon,
so deleting a binding would hang whenever the operator is down or uninstalled. One task over
kopf's indices needs no finalizer, and its interval is the operator's setting, not a constant
fixed at import. Spec changes and pod events ``touch`` a binding to be looked at right away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .binding import BindingError, validate_spec
from .book import Book, Key
from .queues import QueueReader
from .status import now_iso

logger = logging.getLogger(__name__)

RECOUNT_EVERY = 5.0  # seconds: bound pods are recounted (in memory) at least this often


def _values(index: Mapping[Any, Any], key: Key) -> list[Any]:
    try:
        store: Iterable[Any] = index[key]
    except KeyError:
        return []
    return list(store)


class Checker:
    """Reads queues every ``interval`` seconds per binding, at most ``concurrency`` at once."""

    def __init__(
        self,
        *,
        book: Book,
        reader: QueueReader,
        bindings: Mapping[Any, Any],
        pods: Mapping[Any, Any],
        interval: float,
        concurrency: int = 8,
    ) -> None:
        self.book = book
        self.reader = reader
        self.bindings = bindings  # kopf index: (namespace, name) -> [{"spec", "status", ...}]
        self.pods = pods  # pods.BoundPods: (namespace, binding) -> {pod name, ...}
        self.interval = interval
        self.recount_every = min(interval, RECOUNT_EVERY)
        self._due: dict[Key, float] = {}
        self._pods_dirty: set[Key] = set()
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._next_recount = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="carrier queue checker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def touch(self, key: Key, *, queue: bool) -> None:
        """Look at a binding now: its queue too (``queue``), or only its pods."""
        if queue:
            self._due[key] = 0.0
        self._pods_dirty.add(key)
        self._wake.set()

    def bound_pods(self, key: Key) -> tuple[str, ...]:
        return tuple(str(name) for name in _values(self.pods, key))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                await self._round(loop.time())
            except Exception:  # never let one bad round end the checking
                logger.exception("queue check round failed")
            next_check = min(self._due.values(), default=loop.time() + self.interval)
            delay = max(0.0, min(next_check - loop.time(), self.recount_every))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _round(self, now: float) -> None:
        present = {key for key in self.bindings if isinstance(key, tuple)}
        for key in set(self._due) - present:
            self._due.pop(key, None)
        for key in set(self.book.keys()) - present:
            self.book.forget(key)
        due = [key for key in present if self._due.get(key, 0.0) <= now]
        for key in due:
            self._due[key] = now + self.interval
        if now >= self._next_recount:  # catches pods that left the index without an event
            self._pods_dirty |= present
            self._next_recount = now + self.recount_every
        pods_only = (self._pods_dirty & present) - set(due)
        self._pods_dirty.clear()
        await asyncio.gather(
            *(self._check(key) for key in due), *(self._recount(key) for key in pods_only)
        )

    async def _check(self, key: Key) -> None:
        entries = _values(self.bindings, key)
        if not entries:
            return
        entry = entries[-1]
        obs = self.book.observed(key, entry.get("status"))
        try:
            settings = validate_spec(entry.get("spec") or {})
        except BindingError as exc:
            obs.spec_error = str(exc)
            obs.probe = None
        else:
            async with self._limit:
                probe = await self.reader.probe(settings)
            obs.spec_error = None
            obs.probe = probe
            obs.checked_at = now_iso()
            if not probe.reachable:
                logger.info("queue of %s/%s unreadable: %s", *key, probe.message)
        obs.pods = self.bound_pods(key)
        await self.book.try_publish(key)

    async def _recount(self, key: Key) -> None:
        if not _values(self.bindings, key):
            return
        obs = self.book.observed(key)
        obs.pods = self.bound_pods(key)
        await self.book.try_publish(key)
