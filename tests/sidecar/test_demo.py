"""`make demo` end to end: moto_server, the sample worker, the real sidecar, drain, clean stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real servers or processes

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_delivers_every_sample_and_stops_cleanly() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO), "--once"],
        capture_output=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, out + done.stderr.decode(errors="replace")
    assert out.count("worker: POST /orders?source=carrier") == 5
    assert "queue drained" in out
    assert "sidecar exited with code 0" in out
