"""Chaos runs with Jepsen-style accounting: nothing lost, duplicates counted and explained.

Asserted: every id delivered with a 2xx at least once (lost = 0); the queue empty at the end
(visible + in flight + delayed = 0); no crash; every SIGTERM ends with exit 0; zero duplicates
caused by a graceful SIGTERM; for FIFO, per-group order among first successful deliveries.
Duplicates from SIGKILL, SQS outages and the server's own at-least-once are counted, not denied.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.conftest import FULL
from tests.chaos.scenario import Outcome, Plan, run
from tests.support.servers import MotoServer

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(7200 if FULL else 300)]

SIZES = {"standard": 10_000 if FULL else 800, "fifo": 10_000 if FULL else 300}
FAULTS = {
    "sigterms": 3,
    "sigkills": 3,
    "outages": 2 if FULL else 1,
    "freezes": 2 if FULL else 1,
}


def _check(outcome: Outcome) -> None:
    report = outcome.report
    figures = outcome.figures()
    assert not report.lost, f"lost {len(report.lost)} ids, e.g. {report.lost[:5]}: {figures}"
    assert report.delivered == report.sent
    assert not outcome.crashes, outcome.crashes
    assert not any(outcome.queue_left.values()), f"queue not empty: {outcome.queue_left}"
    bad_exits = {
        k: v for k, v in outcome.exit_codes.items() if k in ("sigterm", "final") and any(v)
    }
    assert not bad_exits, f"graceful stops must exit 0: {outcome.exit_codes}"
    assert not any(k.endswith("-hung") for k in outcome.exit_codes), outcome.exit_codes
    assert report.duplicates["sigterm"] == 0, f"SIGTERM duplicates: {report.examples}"
    assert not report.order_violations, report.order_violations[:10]
    # The faults really happened: a run without them would prove nothing.
    for kind in ("sigterm", "sigkill", "sqs_outage", "sqs_freeze"):
        assert outcome.faults[kind] >= 1, outcome.faults
    for kind in ("webhook_http_5xx", "webhook_http_429", "webhook_reset", "webhook_hang"):
        assert outcome.faults[kind] >= 1, outcome.faults


@pytest.mark.parametrize("kind", ["standard", "fifo"])
async def test_chaos_run_loses_nothing(
    kind: str, chaos_moto: MotoServer, chaos_seed: int, tmp_path: Path, results_dir: Path
) -> None:
    if kind == "fifo" and not (FULL or os.environ.get("CARRIER_CHAOS_FIFO") == "1"):
        pytest.skip(
            "reduced FIFO chaos is opt-in (CARRIER_CHAOS_FIFO=1, or make chaos): moto 5.2.5 can "
            "strand a FIFO group under concurrent receives (docs/reliability.md), which stalled "
            "1 run in 3 on a loaded machine"
        )
    deadline = 5400.0 if FULL else 200.0
    plan = Plan(
        kind=kind,
        messages=SIZES[kind],
        seed=chaos_seed,
        deadline=deadline,
        window=500 if FULL else None,
        **FAULTS,
    )
    outcome = await run(plan, chaos_moto, tmp_path)
    outcome.write(results_dir / f"{'full' if FULL else 'reduced'}-{kind}.json")
    print(outcome.figures())
    _check(outcome)
