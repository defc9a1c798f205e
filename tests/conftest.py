"""Shared fixtures: real moto_server over HTTP, real aiohttp webhooks, AWS test credentials."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiobotocore.session import get_session

from tests.support.servers import AWS_TEST_ENV, MotoServer, WebhookRecorder, running_moto

os.environ.update(AWS_TEST_ENV)

# A test that starts a real part (a server, a process, the helm binary) is ``slow``: ``make unit``
# runs the rest, the pure and in-memory tests, for the edit-test loop. Fixtures that start one
# mark their users; a test that starts one itself says so with ``pytest.mark.slow``.
REAL_PART_FIXTURES = frozenset(
    {
        "moto", "sqs", "webhook", "kube", "helm", "operator", "release", "endpoint",
        "sidecar_command", "sidecar_exe", "chaos_moto", "cluster_sqs", "sqs_endpoint",
    }
)  # fmt: skip
SLOW_SUITES = frozenset({"chaos", "chart", "compat", "e2e", "fuzz", "bench"})


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m "not slow"`` the slow suites are not even imported (the fast loop stays fast)."""
    if config.getoption("markexpr") == "not slow" and collection_path.is_dir():
        parts = collection_path.relative_to(config.rootpath).parts
        if len(parts) == 2 and parts[0] == "tests" and parts[1] in SLOW_SUITES:
            return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        suite = item.path.relative_to(item.config.rootpath).parts[1]
        fixtures = set(getattr(item, "fixturenames", ()))
        if suite in SLOW_SUITES or fixtures & REAL_PART_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto_server for the session; tests isolate themselves with unique queue names."""
    with running_moto() as server:
        yield server


@pytest.fixture
def queue_name() -> str:
    return f"q-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def sqs(moto: MotoServer) -> AsyncIterator[object]:
    """An aiobotocore SQS client for arranging and inspecting queues from tests."""
    session = get_session()
    async with session.create_client(
        "sqs", region_name="us-east-1", endpoint_url=moto.endpoint
    ) as client:
        yield client


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookRecorder]:
    recorder = await WebhookRecorder().start()
    try:
        yield recorder
    finally:
        await recorder.stop()


@pytest.fixture(scope="session")
def sidecar_command() -> list[str]:
    found = shutil.which("carrier-sidecar", path=str(Path(sys.executable).parent))
    assert found, "carrier-sidecar is not installed in the venv (pip install -e '.[dev]')"
    return [found]
