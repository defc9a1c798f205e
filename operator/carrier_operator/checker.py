"""The reconcile loop: one background task over kopf's indices that, on the leader only, brings
each binding's status, Events and rollouts in line with its spec, its queue and its pods.

Why not kopf's change handlers: they write kopf's progress and diff-base annotations on the
object in every replica, so a follower "handling" a change would mark it done for the leader.
Here every replica only *indexes* (what admission needs); the leader's loop is level-triggered
(spec_sync.py) and needs no memory but the status it wrote. Why not a kopf timer per binding:
kopf puts a finalizer on every object with a timer or daemon, so deleting a binding would hang
whenever the operator is down. Spec changes (a new ``generation``) and pod events ``touch`` a
binding to be looked at right away; otherwise each is looked at every ``interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

from .autoscaling import check_interval
from .background import cancel_and_wait
from .dead_letters import READ, RiseWatch
from .events import DEAD_LETTERS_RISING, Involved
from .leader import Leadership, NotLeader, SoleReplica
from .metrics import OperatorMetrics
from .queues import QueueProbe, QueueReader
from .scaling_sync import ScalingSync
from .spec_sync import SpecSync, queue_check_off
from .status import now_iso
from .status_writer import Key, StatusWriter

logger = logging.getLogger(__name__)

RECOUNT_EVERY = 5.0  # seconds: bound pods are recounted (in memory) at least this often
ROUND_CONCURRENCY = 32  # bindings reconciled at once (queue reads are further limited to 8)


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
        statuses: StatusWriter,
        reader: QueueReader,
        bindings: Mapping[Any, Any],
        pods: Mapping[Any, Any],
        interval: float,
        sync: SpecSync,
        leadership: Leadership | None = None,
        queue_check: bool = True,
        concurrency: int = 8,
        scaling: ScalingSync | None = None,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self.statuses = statuses
        self.metrics = metrics or OperatorMetrics()
        self.dead_letters = RiseWatch()
        self.sync = sync
        self.scaling = scaling
        self.leadership: Leadership = leadership or SoleReplica()
        self.queue_check = queue_check
        self.reader = reader
        self.bindings = bindings  # kopf index: (namespace, name) -> [{"spec", "status", ...}]
        self.pods = pods  # pods.BoundPods: (namespace, binding) -> {pod name, ...}
        self.interval = interval
        self.recount_every = min(interval, RECOUNT_EVERY)
        self._due: dict[Key, float] = {}
        self._pods_dirty: set[Key] = set()
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(concurrency)
        self._round_limit = asyncio.Semaphore(ROUND_CONCURRENCY)
        self._task: asyncio.Task[None] | None = None
        self._next_recount = 0.0
        self._generations: dict[Key, Any] = {}
        self.round_done = asyncio.Event()  # set after every leader round (start-up's settle waits)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="carrier queue checker")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def touch(self, key: Key, *, queue: bool) -> None:
        """Look at a binding now: its queue too (``queue``), or only its pods."""
        if queue:
            self._due[key] = 0.0
        self._pods_dirty.add(key)
        self._wake.set()

    def changed(self, key: Key, generation: Any) -> None:
        """A binding event: reconcile now if its spec (``generation``) is new to us."""
        if self._generations.get(key) != generation:
            self._generations[key] = generation
            self.touch(key, queue=True)

    def elected(self) -> None:
        """We just became the leader: start from the statuses as written, look at everything."""
        self.statuses.clear()
        self.dead_letters.clear()
        self._due.clear()
        self._next_recount = 0.0
        self._wake.set()

    def bound_pods(self, key: Key) -> tuple[str, ...]:
        return tuple(str(name) for name in _values(self.pods, key))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if not self.leadership.is_leader():  # followers index and admit, nothing more
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.recount_every)
                continue
            try:
                await self._round(loop.time())
                self.round_done.set()
            except NotLeader:
                logger.info("leadership lost during a reconcile round: writes stopped")
            except Exception:  # never let one bad round end the checking
                self.metrics.reconcile_error("unexpected")
                logger.exception("reconcile round failed")
            next_check = min(self._due.values(), default=loop.time() + self.interval)
            delay = max(0.0, min(next_check - loop.time(), self.recount_every))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _round(self, now: float) -> None:
        present = {key for key in self.bindings if isinstance(key, tuple)}
        for key in set(self._due) - present:
            self._due.pop(key, None)
        for key in set(self._generations) - present:
            self._generations.pop(key, None)
        for key in set(self.statuses.keys()) - present:
            self.statuses.forget(key)
            self.dead_letters.forget(key)
            self.metrics.forget(key)
        due = [key for key in present if self._due.get(key, 0.0) <= now]
        for key in due:
            self._due[key] = now + self._interval_of(key)
        if now >= self._next_recount:  # catches pods that left the index without an event
            self._pods_dirty |= present
            self._next_recount = now + self.recount_every
        pods_only = (self._pods_dirty & present) - set(due)
        self._pods_dirty.clear()
        outcomes = await asyncio.gather(
            *(self._bounded(self._check(key)) for key in due),
            *(self._bounded(self._recount(key)) for key in pods_only),
            return_exceptions=True,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        for failure in failures:
            if not isinstance(failure, NotLeader):
                self.metrics.reconcile_error("unexpected")
                logger.error("reconcile failed", exc_info=failure)
        if any(isinstance(f, NotLeader) for f in failures):
            raise NotLeader("leadership lost")

    def _interval_of(self, key: Key) -> float:
        entries = _values(self.bindings, key)
        spec = (entries[-1].get("spec") or {}) if entries else {}
        return check_interval(spec, self.interval)

    async def _bounded(self, work: Awaitable[None]) -> None:
        """At most ROUND_CONCURRENCY bindings in flight: a start-up round over every binding at
        once would hold every request, rendering and status in memory together."""
        async with self._round_limit:
            await work

    async def _check(self, key: Key) -> None:
        """Reconcile one binding: spec (validity, rollout, Events), then its queue, then status."""
        entries = _values(self.bindings, key)
        if not entries:
            return
        entry = entries[-1]
        obs = self.statuses.observed(key, entry.get("status"))
        settings = await self.sync.sync(key, entry, obs)
        if settings is not None:
            obs.check_off = queue_check_off(entry.get("spec") or {}, self.queue_check)
            if obs.check_off is None:
                async with self._limit:
                    probe = await self.reader.probe(settings)
                obs.probe = probe
                obs.checked_at = now_iso()
                if not probe.reachable:
                    self.metrics.queue_check_error(probe.reason)
                    logger.info(
                        "queue unreadable",
                        extra={"namespace": key[0], "binding": key[1], "error": probe.message},
                    )
                else:
                    await self._dead_letters(key, entry, probe)
            else:
                obs.probe = None
            if self.scaling is not None:
                await self.scaling.sync(key, entry, settings, obs)
        obs.pods = self.bound_pods(key)
        await self._publish(key)

    async def _dead_letters(self, key: Key, entry: Mapping[str, Any], probe: QueueProbe) -> None:
        """Count a failed DLQ read; a Warning Event if the DLQ grew (rate-limited)."""
        found = probe.dead_letter
        if found is None:
            return
        if found.reason != READ and found.arn is not None:
            self.metrics.queue_check_error(found.reason)
        if found.messages is None:
            return
        before = self.dead_letters.rose(key, found.messages, entry.get("status"))
        if before is None:
            return
        receives = found.max_receive_count
        failed = f"failed {receives} times" if receives is not None else "kept failing"
        await self.sync.events.warning(
            Involved(key[0], key[1], entry.get("uid")),
            DEAD_LETTERS_RISING,
            f"{found.messages} message(s) in the dead-letter queue {found.arn}, up from "
            f"{before}: messages the worker {failed} (at most one such Event per "
            f"{self.dead_letters.window:g}s)",
        )

    async def _publish(self, key: Key) -> None:
        if not await self.statuses.try_publish(key):
            self.metrics.reconcile_error("status_write")

    async def _recount(self, key: Key) -> None:
        if not _values(self.bindings, key):
            return
        obs = self.statuses.observed(key)
        obs.pods = self.bound_pods(key)
        await self._publish(key)
