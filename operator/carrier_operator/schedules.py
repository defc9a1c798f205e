"""``spec.schedules``: one entry checked and parsed, its ticks in its time zone, and which tick
is due now (pure: no clock, no I/O; the leader's loop is ``scheduler.py``).

Cron expressions are croniter's (5 fields or an ``@hourly``-style macro; never the 6-field
seconds form, so one tick is at least a minute from the next). Ticks are computed in the entry's
IANA ``timeZone`` (UTC by default) and reported in UTC. Daylight saving time, as cron does it:
a wall time the spring change skips runs at the first minute after the gap (02:30 → 03:00),
and in the hour the autumn change repeats, an entry with a fixed hour runs once (the first
01:30), while one whose hour field is ``*`` (``*/30 * * * *``, ``@hourly``) keeps its spacing in
elapsed time and runs in both.

Which tick is due follows a CronJob: only the latest tick not after now, never an older missed
one, and only while it is at most ``startingDeadlineSeconds`` old.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from carrier_sidecar.tasks import TASK_NAME, path_problem

MAX_SCHEDULES = 64
MAX_BODY = 65536  # characters: a binding is an etcd object, and SQS takes 256 KiB in all
DEFAULT_BODY = "{}"
DEFAULT_CONTENT_TYPE = "application/json"
MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
# type/subtype and optional parameters, printable ASCII only (a header value, as the sidecar
# sends it in Content-Type).
CONTENT_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(;[ -~]*)?"
)
KEYS = frozenset(
    {"name", "schedule", "timeZone", "path", "body", "contentType", "startingDeadlineSeconds"}
    | {"suspend"}
)


class ScheduleError(ValueError):
    """A bad ``spec.schedules`` entry; ``str()`` is ``spec.schedules[i].field: what is wrong``."""


@dataclass(frozen=True)
class Schedule:
    name: str
    expression: str
    zone: ZoneInfo
    path: str
    body: str = DEFAULT_BODY
    content_type: str | None = DEFAULT_CONTENT_TYPE
    starting_deadline: int | None = None
    suspend: bool = False

    @property
    def fixed_hour(self) -> bool:
        """The hour field is not ``*``: such an entry runs once in a repeated (autumn) hour."""
        return croniter(self.expression).expressions[1] != "*"


def parse_schedules(value: Any) -> list[Schedule]:
    """Every entry of ``spec.schedules`` (None: none), or :class:`ScheduleError` for the first
    bad one, naming its index and field."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScheduleError("spec.schedules: must be a list of {name, schedule, path, ...}")
    if len(value) > MAX_SCHEDULES:
        raise ScheduleError(f"spec.schedules: at most {MAX_SCHEDULES} entries (got {len(value)})")
    parsed: list[Schedule] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        entry = parse_entry(item, f"spec.schedules[{index}]")
        if entry.name in seen:
            raise ScheduleError(
                f"spec.schedules[{index}].name: {entry.name!r} is already the name of "
                f"spec.schedules[{seen[entry.name]}]; names are unique in a binding"
            )
        seen[entry.name] = index
        parsed.append(entry)
    return parsed


def parse_entry(item: Any, where: str) -> Schedule:
    if not isinstance(item, Mapping):
        raise ScheduleError(f"{where}: must be an object with name, schedule and path")
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise ScheduleError(f"{where}.{unknown[0]}: not a schedule field (known: {_known()})")
    name = _required_str(item, "name", where)
    if not TASK_NAME.fullmatch(name):
        raise ScheduleError(
            f"{where}.name: {name!r} is not 1-63 letters, digits, '.', '_' or '-' starting "
            "with a letter or digit"
        )
    expression = " ".join(_required_str(item, "schedule", where).split())
    problem = cron_problem(expression)
    if problem is not None:
        raise ScheduleError(f"{where}.schedule: {expression!r} {problem}")
    path = _required_str(item, "path", where)
    problem = path_problem(path)
    if problem is not None:
        raise ScheduleError(f"{where}.path: {path!r} {problem}")
    return Schedule(
        name=name,
        expression=expression,
        zone=_zone(item.get("timeZone"), where),
        path=path,
        body=_body(item.get("body"), where),
        content_type=_content_type(item, where),
        starting_deadline=_deadline(item.get("startingDeadlineSeconds"), where),
        suspend=_suspend(item.get("suspend"), where),
    )


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a 5-field cron expression or macro, or None if it is one."""
    if expression.startswith("@"):
        if expression.lower() in MACROS:
            return None
        return f"is not a macro this operator knows ({', '.join(sorted(MACROS))})"
    if len(expression.split()) != 5:
        return "needs 5 fields: minute hour day-of-month month day-of-week"
    try:
        croniter(expression)
    except (CroniterError, ValueError, KeyError) as exc:
        return f"is not a cron expression: {exc}"
    return None


def _known() -> str:
    return ", ".join(sorted(KEYS))


def _required_str(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError(f"{where}.{key}: required, a non-empty string")
    return value.strip()


def _zone(value: Any, where: str) -> ZoneInfo:
    if value is None:
        return ZoneInfo("UTC")
    if not isinstance(value, str) or not value:
        raise ScheduleError(f"{where}.timeZone: must be an IANA time zone name (Europe/Paris)")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"{where}.timeZone: {value!r} is not an IANA time zone (e.g. Europe/Paris, UTC)"
        ) from None


def _body(value: Any, where: str) -> str:
    if value is None:
        return DEFAULT_BODY
    if not isinstance(value, str) or not value:
        raise ScheduleError(f"{where}.body: must be a non-empty string (SQS sends no empty body)")
    if len(value) > MAX_BODY:
        raise ScheduleError(f"{where}.body: at most {MAX_BODY} characters (got {len(value)})")
    return value


def _content_type(item: Mapping[str, Any], where: str) -> str | None:
    value = item.get("contentType")
    if value is None:
        # The default body is JSON; a body of one's own goes with the sidecar's default type.
        return DEFAULT_CONTENT_TYPE if item.get("body") is None else None
    if not isinstance(value, str) or not CONTENT_TYPE.fullmatch(value):
        raise ScheduleError(f"{where}.contentType: {value!r} is not a media type (text/plain)")
    return value


def _deadline(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScheduleError(f"{where}.startingDeadlineSeconds: must be a whole number >= 1")
    return value


def _suspend(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ScheduleError(f"{where}.suspend: must be true or false")
    return value


# --- ticks ------------------------------------------------------------------------------------
def _skipped(entry: Schedule, tick: datetime) -> bool:
    """A fixed-hour tick in the second pass of a repeated (autumn) hour: cron runs it once."""
    if not entry.fixed_hour:
        return False
    wall = tick.replace(tzinfo=None)
    first = wall.replace(fold=0).replace(tzinfo=entry.zone).utcoffset()
    second = wall.replace(fold=1).replace(tzinfo=entry.zone).utcoffset()
    # Repeated (not skipped) wall time: the first pass has the larger offset (summer time).
    return (
        first is not None and second is not None and first > second and tick.utcoffset() == second
    )


def next_tick(entry: Schedule, after: datetime) -> datetime:
    """The first tick strictly after ``after``, in UTC."""
    it = croniter(entry.expression, after.astimezone(entry.zone))
    for _ in range(4):  # at most one skipped tick in a row, far fewer than this bound
        tick: datetime = it.get_next(datetime)
        if not _skipped(entry, tick):
            return tick.astimezone(UTC)
    return tick.astimezone(UTC)


def latest_tick(entry: Schedule, now: datetime) -> datetime:
    """The last tick at or before ``now``, in UTC."""
    it = croniter(entry.expression, (now + timedelta(microseconds=1)).astimezone(entry.zone))
    for _ in range(4):
        tick: datetime = it.get_prev(datetime)
        if not _skipped(entry, tick):
            return tick.astimezone(UTC)
    return tick.astimezone(UTC)


@dataclass(frozen=True)
class Due:
    """What to do about an entry now: send ``tick``, or note it ``missed`` (too late)."""

    tick: datetime
    missed: bool = False


def due(
    entry: Schedule, now: datetime, *, last: datetime | None, first: datetime | None
) -> Due | None:
    """The tick to send now, a missed one to report, or None.

    ``last``: the last tick claimed (``lastScheduleTime``). ``first``: while none was, the first
    tick the entry was due at (the ``nextScheduleTime`` written when the operator first saw
    it), so an entry added to an old binding never fires for ticks before it existed. Only the
    latest tick counts: after downtime, older missed ones are never sent.
    """
    if entry.suspend:
        return None
    tick = latest_tick(entry, now)
    if last is not None:
        if tick <= last:
            return None
    elif first is None or tick < first:
        return None
    late = (now - tick).total_seconds()
    if entry.starting_deadline is not None and late > entry.starting_deadline:
        return Due(tick, missed=True)
    return Due(tick)


def task_routes(entries: Sequence[Schedule]) -> str | None:
    """``CARRIER_WEBHOOK_TASKS`` for these entries (``name=/path,...``), None for none.
    A suspended entry keeps its route: a tick sent before the suspension is still delivered."""
    if not entries:
        return None
    return ",".join(f"{entry.name}={entry.path}" for entry in entries)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time from status, None if absent or unreadable (then treated as unknown)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
