"""Fixtures of the fuzz suites: the real ``carrier-sidecar`` executable."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sidecar_exe() -> str:
    """The installed console script (fails, never skips: the product must be installed)."""
    found = shutil.which("carrier-sidecar", path=str(Path(sys.executable).parent))
    assert found, "carrier-sidecar is not installed in the venv (pip install -e '.[dev]')"
    return found
