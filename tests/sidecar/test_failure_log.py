"""Issue 13 §6: an always-failing webhook gives a bounded, still telling log.

Before, 5 000 messages against an always-500 webhook wrote 30 584 warnings in 45 s. Now each
failure is a DEBUG line; at WARNING only a reason's first failure per window and one summary per
window (``carrier_sidecar.failurelog``).
"""

from __future__ import annotations

import json
import logging
import signal
from typing import Any

import pytest

from carrier_sidecar.failurelog import MAX_REASONS, SUMMARY_INTERVAL, FailureLog
from tests.support.queues import make_queue
from tests.support.servers import MotoServer, WebhookRecorder, always, eventually
from tests.support.sidecars import env_for, sidecar_process


def test_warnings_per_window_are_bounded_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog()
    with caplog.at_level(logging.DEBUG, logger="carrier.delivery"):
        for i in range(5000):
            failures.failed("delivery failed", "HTTP 500", {"message_id": str(i)})
        for i in range(MAX_REASONS + 5):
            failures.failed("delivery failed", f"reason {i}", {"message_id": "x"})
        failures.summarise()
        failures.summarise()  # an empty window writes nothing
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(warnings) == MAX_REASONS + 1, "one per reason (capped) and one summary"
    assert len(debug) == 5000 + MAX_REASONS + 5 - MAX_REASONS
    summary = vars(warnings[-1])
    assert summary["failures"] == 5000 + MAX_REASONS + 5
    assert summary["by_reason"]["HTTP 500"] == 5000
    assert len(summary["by_reason"]) == MAX_REASONS
    assert summary["other_reasons"] == 6


async def test_an_always_500_webhook_logs_a_bounded_summary(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    webhook.responder = always(500)
    url = await make_queue(sqs, queue_name)
    for start in range(0, 200, 10):
        batch = [{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)]
        await sqs.send_message_batch(QueueUrl=url, Entries=batch)
    env = env_for(
        moto,
        queue_name,
        webhook.url,
        CARRIER_SQS_BATCH_SIZE="10",
        CARRIER_SQS_RECEIVER_WORKERS="10",
        CARRIER_RETRY_BACKOFF_BASE="0s",  # retry at once: as many failures as moto allows
    )
    async with sidecar_process(sidecar_command, env) as sidecar:

        def summarised() -> bool:
            return sidecar.logged("delivery failures in the last window")

        await eventually(summarised, SUMMARY_INTERVAL + 20, "the first window's summary")
        sidecar.proc.send_signal(signal.SIGTERM)
        assert await sidecar.wait(20) == 0
    entries: list[dict[str, Any]] = [json.loads(x) for x in sidecar.lines if x.startswith("{")]
    warnings: list[dict[str, Any]] = [e for e in entries if e["level"] == "warning"]
    summaries = [e for e in warnings if e["msg"] == "delivery failures in the last window"]
    posts = len(webhook.received)
    print(f"{posts} failed POSTs, {len(warnings)} warnings, summaries {summaries}")
    assert posts >= 50, "enough failures for a per-attempt log to show"
    assert sum(s["failures"] for s in summaries) == posts, "the summaries count every failure"
    assert all(set(s["by_reason"]) == {"HTTP 500"} for s in summaries)
    # One first-failure line per window plus its summary (the last window may be cut short).
    assert len(warnings) <= 2 * len(summaries) < posts // 10
    assert len(summaries) <= 3
