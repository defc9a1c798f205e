"""Start-up's memory is given back once, after the work it was for (docs/benchmarks.md,
"Operator memory"): a real operator process with bindings present before it starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.kube import BINDINGS, FakeKube, binding_object, condition, fake_kube
from tests.support.operators import RELEASE_NAMESPACE, operators
from tests.support.servers import MotoServer

NAMESPACE = "team-a"
NAMES = ("orders", "billing", "emails")
SETTLED = "start-up done"


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fake_kube(namespaces=("default", NAMESPACE, RELEASE_NAMESPACE)) as api:
        yield api


def _reported(kube: FakeKube, name: str) -> bool:
    return condition(kube.status(BINDINGS, NAMESPACE, name), "Ready").get("status") == "True"


async def test_settles_once_after_every_status_is_written(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await sqs.create_queue(QueueName=queue_name)
    spec = {
        "queue": {"name": queue_name, "region": "us-east-1", "endpoint": moto.endpoint},
        "webhook": {"port": 8080},
    }
    for name in NAMES:
        await kube.create(BINDINGS, binding_object(NAMESPACE, name, spec))
    # The chart's default install: one replica, no election (its RBAC grants no Lease).
    async with operators(kube, 1, env={"CARRIER_OPERATOR_LEADER_ELECTION": "false"}) as fleet:
        (replica,) = fleet.replicas
        await replica.wait_for_log(SETTLED, timeout=60)
        # The leader settles after its full rounds, so every status it owed is written by now.
        assert [name for name in NAMES if not _reported(kube, name)] == []
        assert len(replica.logged(SETTLED)) == 1
