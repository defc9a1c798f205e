"""Chaos runs get their own moto_server: they freeze it (SIGSTOP), which no other test should see.

``CARRIER_CHAOS=full`` (``make chaos``) runs 10 000 messages per queue kind; otherwise a reduced
run small enough for ``make test``. ``CARRIER_CHAOS_SEED`` replays a run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import MotoServer, running_moto

FULL = os.environ.get("CARRIER_CHAOS", "").lower() == "full"
RESULTS = Path(__file__).resolve().parents[2] / ".cache" / "chaos"


@pytest.fixture(scope="module")
def chaos_moto() -> Iterator[MotoServer]:
    with running_moto() as server:
        yield server


@pytest.fixture
def chaos_seed() -> int:
    return int(os.environ.get("CARRIER_CHAOS_SEED", "20261128"))


@pytest.fixture
def results_dir() -> Path:
    return RESULTS
