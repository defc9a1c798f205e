"""Task routing: which path of the webhook a message that names a task is POSTed to (pure).

The message contract (the operator's scheduler relies on it, and so may anyone who sends by
hand): a String message attribute ``Carrier.TaskName`` names the task, and an optional String
attribute ``Carrier.ScheduledTime`` (RFC 3339) says which tick it is. The message never carries
a path: ``CARRIER_WEBHOOK_TASKS`` (``nightly=/tasks/nightly,hourly=/tasks/hourly``) maps names
to paths on the origin (scheme, host, port) of ``CARRIER_WEBHOOK_ENDPOINT``. A name the map does
not list is routed nowhere, so whoever can send to the queue reaches only the listed paths.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from yarl import URL

TASK_NAME_ATTR = "Carrier.TaskName"
SCHEDULED_TIME_ATTR = "Carrier.ScheduledTime"
TASK_NAME_HEADER = "X-Carrier-Task-Name"
SCHEDULED_TIME_HEADER = "X-Carrier-Scheduled-Time"

# Letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters:
# header-safe and log-safe as is, and wide enough for sqsd's cron.yaml names.
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# RFC 3986 pchar without ',' (the entry separator); '%XX' escapes are checked separately.
_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+;=:@-]|%[0-9A-Fa-f]{2})+")
# Escapes that would smuggle a separator or a dot segment past the checks above.
_SMUGGLED = re.compile(r"%(?:2[eEfF]|5[cC]|00)")


def parse_task_routes(text: str) -> dict[str, str]:
    """``name=/path,...`` as a dict; ValueError names the first bad entry and why."""
    routes: dict[str, str] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            raise ValueError(f"empty entry in {text!r} (write name=/path, comma-separated)")
        name, sep, path = (part.strip() for part in entry.partition("="))
        if not sep:
            raise ValueError(f"entry {entry!r} is not name=/path")
        if not TASK_NAME.fullmatch(name):
            raise ValueError(
                f"task name {name!r} is not 1-63 letters, digits, '.', '_' or '-' "
                "starting with a letter or digit"
            )
        if name in routes:
            raise ValueError(f"task {name!r} is listed twice")
        problem = path_problem(path)
        if problem is not None:
            raise ValueError(f"task {name!r}: path {path!r} {problem}")
        routes[name] = path
    return routes


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a task's path on the webhook's origin, or None if it can.

    A path is absolute (``/...``), has no scheme, host, query or fragment, no empty segment
    (``//``), no ``.`` or ``..`` segment and no escaped ``.``, ``/``, ``\\`` or NUL: whatever it
    is, it stays on the webhook's origin and means the same to every server.
    """
    if path.startswith("//") or "://" in path:
        return "names a host; give only a path on the webhook's origin"
    if not path.startswith("/"):
        return "is not absolute (it must start with /)"
    if "?" in path or "#" in path:
        return "has a query or fragment; give only a path"
    if _SMUGGLED.search(path):
        return "escapes '.', '/', '\\' or NUL"
    segments = path[1:].split("/")
    if segments[-1] == "":
        segments.pop()  # a trailing slash is fine
    for segment in segments:
        if segment == "":
            return "has an empty segment (//)"
        if segment in {".", ".."}:
            return "has a '.' or '..' segment"
        if not _SEGMENT.fullmatch(segment):
            return "has characters a path may not carry unescaped"
    return None


def task_of(message: Mapping[str, Any]) -> str | None:
    """The task a message names, None if it names none. A ``Carrier.TaskName`` attribute that
    is not a String still names a task, ``<Binary attribute>`` say, which no listed name can
    equal: such a message is never delivered."""
    attr = (message.get("MessageAttributes") or {}).get(TASK_NAME_ATTR)
    if attr is None:
        return None
    value = attr.get("StringValue")
    data_type = str(attr.get("DataType", ""))
    if not data_type.startswith("String") or not isinstance(value, str):
        return f"<{printable(data_type, 20)} attribute>"
    return value


def scheduled_time(message: Mapping[str, Any]) -> str | None:
    """``Carrier.ScheduledTime`` as RFC 3339 UTC (``2026-12-01T21:00:00Z``), None if absent or
    not an RFC 3339 time with an offset (the raw value still arrives as X-Carrier-Attr-…)."""
    attr = (message.get("MessageAttributes") or {}).get(SCHEDULED_TIME_ATTR)
    value = attr.get("StringValue") if attr is not None else None
    if not isinstance(value, str) or len(value) > 64 or not _RFC3339.fullmatch(value):
        return None
    try:
        when = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return rfc3339(when)


_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)", re.ASCII
)


def rfc3339(when: datetime) -> str:
    """UTC, ``Z``-suffixed, milliseconds only when there are some."""
    utc = when.astimezone(UTC)
    spec = "milliseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


@dataclass(frozen=True, slots=True)
class Routed:
    url: URL
    headers: dict[str, str]


class TaskRouter:
    """Each listed task's URL on the webhook's origin, decided once at start."""

    def __init__(self, webhook_endpoint: str, routes: Mapping[str, str]) -> None:
        base = URL(webhook_endpoint, encoded=True)
        self._urls = {name: base.with_path(path, encoded=True) for name, path in routes.items()}

    def route(self, message: Mapping[str, Any]) -> Routed | str | None:
        """None: no task, deliver as usual. ``Routed``: the task's URL and headers.
        A ``str``: the unlisted task's name (deliver nowhere)."""
        task = task_of(message)
        if task is None:
            return None
        url = self._urls.get(task)
        if url is None:
            return task
        headers = {TASK_NAME_HEADER: task}
        when = scheduled_time(message)
        if when is not None:
            headers[SCHEDULED_TIME_HEADER] = when
        return Routed(url, headers)


def printable(name: str, limit: int = 80) -> str:
    """A hostile task name made safe for one log line: escaped, cut to ``limit`` characters."""
    shown = ascii(name[:limit])[1:-1]
    return shown + ("…" if len(name) > limit else "")


class LogThrottle:
    """At most one line per key per ``interval`` and ``per_interval`` lines in all, so a queue
    full of unlisted task names (chosen by anyone who can send) cannot flood the log."""

    def __init__(self, interval: float = 60.0, per_interval: int = 10, keys: int = 256) -> None:
        self._interval = interval
        self._per_interval = per_interval
        self._keys = keys
        self._last: OrderedDict[str, float] = OrderedDict()
        self._suppressed: dict[str, int] = {}
        self._window_start = float("-inf")
        self._window_lines = 0

    def admit(self, key: str, now: float) -> int | None:
        """None: stay quiet. Else log, mentioning the returned count of lines held back for
        this key since its last one."""
        key = key[:80]
        if now - self._window_start >= self._interval:
            self._window_start, self._window_lines = now, 0
        last = self._last.get(key)
        if (last is not None and now - last < self._interval) or (
            self._window_lines >= self._per_interval
        ):
            if key in self._last or len(self._suppressed) < self._keys:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._window_lines += 1
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self._keys:
            old, _ = self._last.popitem(last=False)
            self._suppressed.pop(old, None)
        return self._suppressed.pop(key, 0)
