"""The periodic stats line (``CARRIER_ENABLE_STAT_LOG`` / ``CARRIER_STAT_LOG_TIMER``).

The Go Carrier logs goroutines and memory; this line adds the metrics counters, so a pod without
a Prometheus scraper still tells how much it did.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
from typing import Final

from .metrics import Metrics

log = logging.getLogger("carrier.stats")

_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# ru_maxrss is KiB on Linux, bytes on macOS.
_MAXRSS_UNIT: Final = 1 if sys.platform == "darwin" else 1024


async def run_stat_log(metrics: Metrics, interval: float) -> None:
    """Log one ``stats`` line every ``interval`` seconds until cancelled."""
    if interval <= 0:
        raise ValueError(f"stat log interval must be positive, got {interval!r}")
    loop = asyncio.get_running_loop()
    due = loop.time() + interval
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        due = max(due + interval, loop.time())
        log.info("stats", extra=stat_fields(metrics))


def stat_fields(metrics: Metrics) -> dict[str, object]:
    """The fields of one stats line: counters, in-flight gauge, memory, asyncio task count."""
    rss = rss_bytes()
    # Counters are floats in prometheus_client; whole numbers read better as JSON integers.
    fields: dict[str, object] = {
        key: int(value) if value.is_integer() else value
        for key, value in metrics.snapshot().items()
    }
    fields["rss_bytes"] = rss
    fields["memory"] = _human_bytes(rss)
    fields["tasks"] = len(asyncio.all_tasks())
    return fields


def rss_bytes() -> int:
    """Current resident set size; the peak (getrusage) where /proc is missing."""
    try:
        # procfs is served from kernel memory: reading it does not block on I/O.
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT


def _human_bytes(size: int) -> str:
    """SI units like the Go Carrier's ``humanize.Bytes``: ``23 MB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 10 else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
