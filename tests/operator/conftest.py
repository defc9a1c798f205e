"""The operator under test: real kopf against kmock's API over HTTP, moto as the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from carrier_operator.config import OperatorSettings
from tests.support.kube import FakeKube, OperatorHandle, fake_kube, running_operator
from tests.support.servers import free_port

NAMESPACE = "team-a"


@pytest.fixture
def operator_config() -> OperatorSettings:
    return OperatorSettings(
        log_format="plain",
        queue_check_interval=0.5,
        liveness_port=free_port(),
        webhook_port=free_port(),
    )


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    # The chart with rollout on: these tests exercise rolloutOnChange (operator default: on).
    async with fake_kube(
        namespaces=("default", NAMESPACE), chart_values={"rollout": {"enabled": True}}
    ) as api:
        yield api


@pytest.fixture
async def operator(
    kube: FakeKube, operator_config: OperatorSettings
) -> AsyncIterator[OperatorHandle]:
    async with running_operator(operator_config) as handle:
        yield handle
