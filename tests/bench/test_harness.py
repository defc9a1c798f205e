"""The benchmark harness runs end to end in a tiny mode and writes its report (no timing asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.sqs_server import FAUXQS_APP

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node/npm missing: the harness would fall back to moto, too slow for a smoke test",
)


@pytest.mark.timeout(180)
def test_tiny_run_writes_report_and_raw_figures(tmp_path: Path) -> None:
    if not FAUXQS_APP.exists() and shutil.which("npm") is None:
        pytest.skip("fauxqs not installed and npm missing")
    report, raw = tmp_path / "benchmarks.md", tmp_path / "raw.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.run", "--messages", "200", "--runs", "1",
            "--only", "b10-r1-w10", "--sidecar-cmd", "standin", "--latency-samples", "3",
            "--idle-window", "0", "--idle-settle", "0.5",
            "--report", str(report), "--json", str(raw),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]

    result = json.loads(raw.read_text())
    run = result["configs"]["b10-r1-w10"]["runs"][0]
    assert run["delivered"] == 200
    assert run["posts"] >= 200
    assert run["requests"]["ReceiveMessage"] >= 20
    assert run["requests"]["DeleteMessageBatch"] >= 20
    assert len(run["latencies_ms"]) == 3
    # Whole process (exec to drained) includes start-up, so it is never below the steady state.
    assert run["whole_cpu_ms_per_1000"] >= run["cpu_ms_per_1000"] > 0
    assert run["whole_seconds"] > run["seconds"]
    assert run["ready_wall_s"] > 0  # the standin logs "receiving" as the sidecar does
    assert result["server_ceiling"]["messages"] == 200
    assert result["webhook_ceiling"]["req_per_s"] > 0

    text = report.read_text()
    assert "## Against the targets" in text
    assert "## Machine" in text
    assert "b10-r1-w10" in text
    assert "admission-latency.md" in text
    assert "<!-- keep:start -->" in text
