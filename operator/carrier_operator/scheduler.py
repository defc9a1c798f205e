"""The leader's periodic tasks: one SQS message per ``spec.schedules`` tick, claimed in status
first so that a failover never sends a tick twice.

Per tick, in this order:

1. **Claim**: ``status.schedules[].lastScheduleTime = tick``, written with the
   ``resourceVersion`` just read (a merge patch whose ``metadata.resourceVersion`` is a
   precondition: 409 if anyone wrote since) and fenced (only the Lease holder writes). Of two
   replicas that both believe a tick is due, exactly one claim succeeds; the other re-reads,
   sees the tick claimed and sends nothing.
2. **Send**: ``SendMessage`` with the String attributes ``Carrier.TaskName`` and
   ``Carrier.ScheduledTime`` (RFC 3339 UTC); on a FIFO queue ``MessageGroupId`` = the
   schedule's name and ``MessageDeduplicationId`` = ``name@tick``.
3. **Report**: ``lastResult`` (Sent, or Failed with the reason), a Warning Event on failure
   (at most one per schedule and reason every ``event_every`` seconds), and ``on_send``.

The trade-off (docs/operator.md, "Periodic tasks"): a leader that dies between claim and send
loses that tick (at most once per failover; the status shows the claim without a result); a
send that timed out may still have been delivered, and botocore's one retry may then deliver it
twice (at least once on a standard queue; a FIFO queue drops the copy by its deduplication id).
A failed send is not retried: the next tick is.

Only the ``schedules`` key of status is written here, always as a whole list read-modified-
written under the resourceVersion; the checker's status merge patches never carry that key, so
neither clobbers the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from carrier_sidecar.headers import CONTENT_TYPE_ATTR
from carrier_sidecar.settings import Settings
from carrier_sidecar.tasks import SCHEDULED_TIME_ATTR, TASK_NAME_ATTR, rfc3339

from .background import cancel_and_wait
from .binding import BindingError
from .config import OperatorSettings
from .events import SCHEDULE_SEND_FAILED, EventPoster, Involved
from .kubeapi import MERGE_PATCH, KubeAPI, KubeAPIError
from .leader import Leadership, NotLeader, SoleReplica, fence
from .queue_failures import QueueCall, describe
from .queues import QueueReader
from .schedules import Schedule, ScheduleError, due, next_tick, parse_schedules, parse_time
from .spec_sync import check_validity
from .status_writer import Key, status_path

logger = logging.getLogger(__name__)

OnSend = Callable[[str, str, str, str], None]  # (namespace, binding, schedule, outcome)
CONFLICT_RETRIES = 4  # re-reads after a 409 before the round gives the binding up
SENT, FAILED, MISSED = "Sent", "Failed", "Missed"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _no_op(_namespace: str, _binding: str, _schedule: str, _outcome: str) -> None:
    return None


def binding_path(namespace: str, name: str) -> str:
    return status_path(namespace, name).removesuffix("/status")


@dataclass
class Plan:
    """The ``status.schedules`` a binding should have now, and the ticks it claims."""

    items: list[dict[str, Any]] = field(default_factory=list)
    claims: list[tuple[Schedule, datetime]] = field(default_factory=list)
    missed: list[tuple[Schedule, datetime]] = field(default_factory=list)
    wake: datetime | None = None  # the earliest next tick (when to look again)


def plan(entries: Sequence[Schedule], status: Any, now: datetime) -> Plan:
    """From the entries and the status as read: what to claim, what was missed, the new list.

    An entry seen for the first time gets its ``nextScheduleTime`` and nothing else: it is the
    baseline (:func:`schedules.due`'s ``first``), so it never fires for ticks before it existed.
    """
    old = _by_name(status)
    made = Plan()
    for entry in entries:
        before = old.get(entry.name)
        item: dict[str, Any] = {"name": entry.name}
        for key in ("lastScheduleTime", "lastResult"):
            if before is not None and before.get(key) is not None:
                item[key] = before[key]
        following = None if entry.suspend else next_tick(entry, now)
        if before is not None:
            last = parse_time(before.get("lastScheduleTime"))
            first = parse_time(before.get("nextScheduleTime")) if last is None else None
            found = due(entry, now, last=last, first=first)
            if found is not None and found.missed and _noted(before, found.tick):
                pass  # reported already: the status says so
            elif found is not None and found.missed:
                late = int((now - found.tick).total_seconds())
                item["lastResult"] = {
                    "outcome": MISSED,
                    "tick": rfc3339(found.tick),
                    "reason": "StartingDeadlineExceeded",
                    "message": f"not sent: {late}s late, past startingDeadlineSeconds "
                    f"{entry.starting_deadline} (the operator was not running or not leading)",
                }
                made.missed.append((entry, found.tick))
            elif found is not None:
                item["lastScheduleTime"] = rfc3339(found.tick)
                made.claims.append((entry, found.tick))
        if following is not None:
            item["nextScheduleTime"] = rfc3339(following)
            made.wake = following if made.wake is None else min(made.wake, following)
        made.items.append(item)
    return made


def _noted(before: Mapping[str, Any], tick: datetime) -> bool:
    result = before.get("lastResult")
    return (
        isinstance(result, Mapping)
        and result.get("outcome") == MISSED
        and result.get("tick") == rfc3339(tick)
    )


def _by_name(status: Any) -> dict[str, Mapping[str, Any]]:
    items = status.get("schedules") if isinstance(status, Mapping) else None
    if not isinstance(items, list):
        return {}
    return {
        str(item["name"]): item
        for item in items
        if isinstance(item, Mapping) and isinstance(item.get("name"), str)
    }


def send_request(entry: Schedule, tick: datetime, fifo: bool) -> dict[str, Any]:
    """The SendMessage arguments (but the queue URL) of one tick."""
    attributes = {
        TASK_NAME_ATTR: {"DataType": "String", "StringValue": entry.name},
        SCHEDULED_TIME_ATTR: {"DataType": "String", "StringValue": rfc3339(tick)},
    }
    if entry.content_type is not None:
        attributes[CONTENT_TYPE_ATTR] = {"DataType": "String", "StringValue": entry.content_type}
    request: dict[str, Any] = {"MessageBody": entry.body, "MessageAttributes": attributes}
    if fifo:
        request["MessageGroupId"] = entry.name
        request["MessageDeduplicationId"] = dedup_id(entry.name, tick)
    return request


def dedup_id(name: str, tick: datetime) -> str:
    """The same for every replica and retry of one tick (at most 63 + 21 characters)."""
    return f"{name}@{rfc3339(tick)}"


SEND_TICK = QueueCall(
    action="SendMessage",
    verb="sending to",
    other="SendError",
    identity="The scheduler sends with the operator's identity: grant it sqs:SendMessage",
)


def send_failure(exc: BaseException, settings: Settings) -> tuple[str, str]:
    """(reason, message) of a failed SendMessage, for status and the Warning Event."""
    return describe(exc, settings, SEND_TICK)


class Scheduler:
    """Sends the ticks of every indexed binding's schedules while this replica leads."""

    def __init__(
        self,
        *,
        api: KubeAPI,
        bindings: Mapping[Any, Any],
        reader: QueueReader,
        events: EventPoster,
        leadership: Leadership | None = None,
        config: OperatorSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_send: OnSend = _no_op,
        max_wait: float = 5.0,
        event_every: float = 600.0,
        concurrency: int = 8,
    ) -> None:
        self.api = api
        self.bindings = bindings  # kopf index: (namespace, name) -> [{"spec", "status", ...}]
        self.reader = reader
        self.events = events
        self.leadership: Leadership = leadership or SoleReplica()
        self.config = config or OperatorSettings()
        self.clock = clock
        self.on_send = on_send
        self.max_wait = max_wait
        self.event_every = timedelta(seconds=event_every)
        self._warned: dict[tuple[Key, str], tuple[str, datetime]] = {}
        self._wake = asyncio.Event()
        self._next: datetime | None = None
        self._announce = False
        self._limit = asyncio.Semaphore(concurrency)
        self._parsed: dict[Key, tuple[Any, list[Schedule], Settings]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="carrier scheduler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def wake(self) -> None:
        """Look at every schedule now (a binding changed)."""
        self._wake.set()

    def elected(self) -> None:
        """We just became the leader: look at every schedule now, and say so once done."""
        self._announce = True
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if self.leadership.is_leader():
                try:
                    await self.round()
                    if self._announce:
                        self._announce = False
                        logger.info(
                            "scheduler: took over the schedules",
                            extra={
                                "next_tick": rfc3339(self._next)
                                if self._next is not None
                                else "none",
                            },
                        )
                except NotLeader:
                    logger.info("leadership lost during a scheduler round: sends stopped")
                except Exception:  # never let one bad round end the schedules
                    logger.exception("scheduler round failed")
            delay = self.max_wait
            if self._next is not None:
                delay = min(delay, max(0.0, (self._next - self.clock()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def round(self) -> None:
        """Every binding once (``concurrency`` at a time, so one slow queue delays no other):
        claim and send what is due, keep status.schedules current. Raises
        :class:`~.leader.NotLeader` if leadership was lost before a write."""
        self._next = None
        keys = [k for k in self.bindings if isinstance(k, tuple)]
        for key in set(self._parsed) - set(keys):
            del self._parsed[key]
        outcomes = await asyncio.gather(
            *(self._limited(key) for key in keys), return_exceptions=True
        )
        lost = False
        for key, outcome in zip(keys, outcomes, strict=True):
            if isinstance(outcome, NotLeader):
                lost = True
            elif isinstance(outcome, KubeAPIError):
                logger.warning(
                    "cannot handle the schedules",
                    extra={"namespace": key[0], "binding": key[1], "error": str(outcome)},
                )
            elif isinstance(outcome, BaseException):
                logger.error(
                    "schedules failed",
                    extra={"namespace": key[0], "binding": key[1]},
                    exc_info=outcome,
                )
        if lost:
            raise NotLeader("leadership lost during a scheduler round")

    async def _limited(self, key: Key) -> None:
        async with self._limit:
            await self.binding(key)

    def _entries(self, key: Key, indexed: Mapping[str, Any]) -> tuple[list[Schedule], Settings]:
        """The parsed schedules and settings of a spec, kept per generation (rounds are often:
        the sidecar's model runs once per spec change, not every few seconds)."""
        generation = indexed.get("generation")
        cached = self._parsed.get(key)
        if generation is not None and cached is not None and cached[0] == generation:
            return cached[1], cached[2]
        spec = indexed.get("spec") or {}
        entries = parse_schedules(spec.get("schedules"))
        settings = check_validity(spec, key[0], self.config)
        if generation is not None:
            self._parsed[key] = (generation, entries, settings)
        return entries, settings

    async def binding(self, key: Key) -> None:
        """One binding: decide from the index, re-decide from a fresh read before any write."""
        store = self.bindings.get(key) if isinstance(self.bindings, Mapping) else None
        found = list(store) if store is not None else []
        if not found:
            return
        indexed = found[-1]
        spec = indexed.get("spec") or {}
        if not spec.get("schedules") and not (indexed.get("status") or {}).get("schedules"):
            return
        try:
            entries, settings = self._entries(key, indexed)
        except (BindingError, ScheduleError):
            return  # an invalid spec sends nothing (its Valid condition says why)
        now = self.clock()
        guess = plan(entries, indexed.get("status"), now)
        self._note_wake(guess.wake)
        if not guess.claims and not guess.missed and guess.items == _items(indexed):
            return  # nothing due and status current, as far as the index knows
        claimed = await self._claim(key, entries, now)
        if claimed is None:
            return
        about = Involved(key[0], key[1], indexed.get("uid"))
        for entry, _tick in claimed.missed:
            self.on_send(key[0], key[1], entry.name, "missed")
        results: dict[str, dict[str, Any]] = {}
        for entry, tick in claimed.claims:
            results[entry.name] = await self._send(key, about, settings, entry, tick)
        if results:
            await self._report(key, results)

    def _note_wake(self, wake: datetime | None) -> None:
        if wake is not None and (self._next is None or wake < self._next):
            self._next = wake

    async def _claim(self, key: Key, entries: Sequence[Schedule], now: datetime) -> Plan | None:
        """Write the plan made from a fresh read, under its resourceVersion; the plan written,
        None if the binding is gone or someone else keeps winning."""
        for _ in range(CONFLICT_RETRIES):
            fresh = await self.api.get(binding_path(*key))
            if fresh is None:
                return None
            made = plan(entries, fresh.get("status"), now)
            if made.items == _items(fresh):
                return made  # already current (claimed by a predecessor, or nothing new)
            if await self._write(key, fresh, made.items):
                return made
        logger.warning(
            "schedules still conflicting: the next round retries",
            extra={"namespace": key[0], "binding": key[1]},
        )
        return None

    async def _write(self, key: Key, read: Mapping[str, Any], items: list[dict[str, Any]]) -> bool:
        """One resourceVersion-checked, fenced write of status.schedules; False on 409."""
        version = (read.get("metadata") or {}).get("resourceVersion")
        body = {"metadata": {"resourceVersion": version}, "status": {"schedules": items}}
        fence(self.leadership)
        try:
            await self.api.request("PATCH", status_path(*key), body, content_type=MERGE_PATCH)
        except KubeAPIError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def _send(
        self, key: Key, about: Involved, settings: Settings, entry: Schedule, tick: datetime
    ) -> dict[str, Any]:
        fence(self.leadership)
        try:
            message_id = await self.reader.send(
                settings, **send_request(entry, tick, settings.is_fifo)
            )
        except Exception as exc:  # a result in status, never a crash of the loop
            reason, message = send_failure(exc, settings)
            logger.warning(
                "schedule tick not sent",
                extra={
                    "namespace": key[0],
                    "binding": key[1],
                    "schedule": entry.name,
                    "error": message,
                },
            )
            self.on_send(key[0], key[1], entry.name, "failed")
            await self._warn(key, about, entry.name, reason, message, rfc3339(tick))
            return {"outcome": FAILED, "tick": rfc3339(tick), "reason": reason, "message": message}
        self.on_send(key[0], key[1], entry.name, "sent")
        logger.info(
            "schedule tick sent",
            extra={
                "namespace": key[0],
                "binding": key[1],
                "schedule": entry.name,
                "tick": rfc3339(tick),
            },
        )
        return {
            "outcome": SENT,
            "tick": rfc3339(tick),
            "reason": "MessageSent",
            "message": f"message {message_id} sent to {settings.queue_label}",
        }

    async def _warn(
        self, key: Key, about: Involved, name: str, reason: str, message: str, tick: str
    ) -> None:
        now = self.clock()
        last = self._warned.get((key, name))
        if last is not None and last[0] == reason and now - last[1] < self.event_every:
            return
        self._warned[(key, name)] = (reason, now)
        await self.events.warning(
            about, SCHEDULE_SEND_FAILED, f"schedule {name}: tick {tick} not sent: {message}"
        )

    async def _report(self, key: Key, results: Mapping[str, dict[str, Any]]) -> None:
        """Each claimed tick's lastResult, where the status still shows that claim."""
        for _ in range(CONFLICT_RETRIES):
            fresh = await self.api.get(binding_path(*key))
            if fresh is None:
                return
            items = [dict(item) for item in _items(fresh)]
            for item in items:
                result = results.get(str(item.get("name")))
                if result is not None and item.get("lastScheduleTime") == result["tick"]:
                    item["lastResult"] = result
            if items == _items(fresh) or await self._write(key, fresh, items):
                return
        logger.warning(
            "schedule results not written (conflicts)",
            extra={"namespace": key[0], "binding": key[1]},
        )


def _items(obj: Mapping[str, Any]) -> list[Any]:
    items = (obj.get("status") or {}).get("schedules")
    return list(items) if isinstance(items, list) else []
