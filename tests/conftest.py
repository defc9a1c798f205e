"""Shared fixtures: real moto_server over HTTP, real aiohttp webhooks, AWS test credentials."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiobotocore.session import get_session

from tests.support.servers import AWS_TEST_ENV, MotoServer, WebhookRecorder, running_moto

os.environ.update(AWS_TEST_ENV)


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
