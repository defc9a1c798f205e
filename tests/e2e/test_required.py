"""The switch that keeps the e2e workflow honest, tested by running the e2e suite for real in a
subprocess where Docker and kind are out of reach (only the venv's own bin on PATH): without
CARRIER_E2E_REQUIRED it skips with the reason (exit 0); with it, every skip is a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .kube import ROOT


def _run_e2e(required: bool) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CARRIER_E2E", "PYTEST_ADDOPTS"))
    }
    env["PATH"] = str(Path(sys.executable).parent)  # no docker, no kind: the suite cannot run
    if required:
        env["CARRIER_E2E_REQUIRED"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-m",
            "e2e",
            "tests/e2e/test_kind.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_the_switch_the_suite_skips_with_the_reason() -> None:
    done = _run_e2e(required=False)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "skipped" in done.stdout
    assert "failed" not in done.stdout
    assert "docker not found" in done.stdout  # the reason is shown (-rs)


def test_with_the_switch_every_skip_is_a_failure() -> None:
    done = _run_e2e(required=True)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "skipped" not in done.stdout
    assert "CARRIER_E2E_REQUIRED=1: this e2e test may not skip" in done.stdout
    assert "docker not found" in done.stdout
