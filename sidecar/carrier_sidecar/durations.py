"""Go duration syntax (``60s``, ``1m30s``, ``500ms``, ``2h``), so Go Carrier environments parse as-is.

Plain numbers are read as seconds, which the Go Carrier did not accept but users expect.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_duration(text: str) -> float:
    """Return seconds for a Go duration or a plain number of seconds; raise ValueError otherwise."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty duration")
    if raw.startswith("-"):
        raise ValueError(f"negative duration {text!r}")
    raw = raw.removeprefix("+")
    if _PLAIN.fullmatch(raw):
        return _finite(float(raw), text)
    pos = 0
    total = 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or pos == 0:
        raise ValueError(f"invalid duration {text!r} (use Go syntax like 60s, 1m30s, 500ms)")
    return _finite(total, text)


def _finite(value: float, text: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"invalid duration {text!r}")
    return value


def format_duration(seconds: float) -> str:
    """Render seconds in Go syntax, the inverse of :func:`parse_duration` for what it renders."""
    if seconds == int(seconds):
        whole = int(seconds)
        if whole and whole % 3600 == 0:
            return f"{whole // 3600}h"
        if whole and whole % 60 == 0:
            return f"{whole // 60}m"
        return f"{whole}s"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    # The shortest repr, written without an exponent ("1e-09" is not Go syntax): round-trips.
    return f"{format(Decimal(repr(seconds)), 'f')}s"
