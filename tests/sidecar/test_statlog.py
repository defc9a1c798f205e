"""The periodic stats log line."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from carrier_sidecar.logs import JsonFormatter
from carrier_sidecar.metrics import Metrics
from carrier_sidecar.statlog import rss_bytes, run_stat_log
from tests.support.servers import eventually


def stats_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "carrier.stats" and r.message == "stats"]


async def test_stat_log_emits_counters_memory_and_tasks(
    no_leaked_tasks: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carrier.stats")
    metrics = Metrics()
    metrics.received(2)
    metrics.delivered("success", 0.1)
    metrics.deleted(1)
    metrics.in_flight(1)
    logging_task = asyncio.create_task(run_stat_log(metrics, 0.05))

    await eventually(lambda: len(stats_records(caplog)) >= 2, 5, "two stats lines")
    metrics.received(5)
    count = len(stats_records(caplog))
    await eventually(lambda: len(stats_records(caplog)) > count, 5, "a later stats line")
    logging_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await logging_task

    first_record, last_record = stats_records(caplog)[0], stats_records(caplog)[-1]
    assert first_record.levelno == logging.INFO
    # The counters arrive as ``extra=`` fields, which logging stores in the record's __dict__.
    first, last = vars(first_record), vars(last_record)
    assert first["messages_received"] == 2
    assert type(first["messages_received"]) is int  # whole counts print as JSON integers
    assert first["deliveries_success"] == 1
    assert first["messages_deleted"] == 1
    assert first["in_flight_messages"] == 1
    assert first["rss_bytes"] > 1_000_000  # a Python process is megabytes, never zero
    assert first["memory"].endswith(" MB")
    assert first["tasks"] >= 1  # at least the stat log's own task
    assert last["messages_received"] == 7  # each line reads the counters afresh


async def test_stat_log_waits_one_interval_before_the_first_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="carrier.stats")
    logging_task = asyncio.create_task(run_stat_log(Metrics(), 60))
    done, _ = await asyncio.wait({logging_task}, timeout=0.2)
    assert not done
    logging_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await logging_task
    assert stats_records(caplog) == []


@pytest.mark.parametrize("interval", [0, -1.0])
async def test_stat_log_rejects_a_non_positive_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        await run_stat_log(Metrics(), interval)


def test_rss_is_the_current_resident_size() -> None:
    before = rss_bytes()
    ballast = bytearray(64 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
    after = rss_bytes()
    del ballast
    assert after - before > 32 * 1024 * 1024


async def test_stats_line_is_one_json_object_with_the_go_carrier_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="carrier.stats")
    metrics = Metrics()
    metrics.delivered("failure", 0.5)
    logging_task = asyncio.create_task(run_stat_log(metrics, 0.02))
    await eventually(lambda: bool(stats_records(caplog)), 5, "a stats line")
    logging_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await logging_task

    line = JsonFormatter().format(stats_records(caplog)[0])

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "stats"  # the Go Carrier's message too
    assert entry["logger"] == "carrier.stats"
    assert entry["deliveries_failure"] == 1
    assert entry["rss_bytes"] > 0
    assert isinstance(entry["memory"], str)
    assert isinstance(entry["tasks"], int)
