"""Hostile ``spec.schedules`` over real HTTPS: the validating webhook (AdmissionReview v1, as
the API server sends it) refuses each with one line naming the field, and the injector renders
a valid binding's schedules into the sidecar's ``CARRIER_WEBHOOK_TASKS``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from carrier_operator.config import SIDECAR_CONTAINER
from tests.injector.conftest import containers, env_of, patched
from tests.injector.harness import Injector, ready_binding, replicaset_pod, running_injector

pytestmark = pytest.mark.asyncio(loop_scope="module")

BASE: dict[str, Any] = {"queue": {"name": "orders-q"}, "webhook": {"port": 8080}}
NIGHTLY = {"name": "nightly", "schedule": "0 3 * * *", "path": "/tasks/nightly"}
SCHEDULED = {
    **BASE,
    "schedules": [
        NIGHTLY,
        {"name": "hourly", "schedule": "@hourly", "timeZone": "Europe/Paris", "path": "/h"},
    ],
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def injector() -> AsyncIterator[Injector]:
    async with running_injector(bindings=[ready_binding("team-a", "orders", SCHEDULED)]) as running:
        yield running


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"schedule": "0 25 * * *"}, "spec.schedules[1].schedule: '0 25 * * *' is not a cron"),
        ({"schedule": "every day"}, "spec.schedules[1].schedule: 'every day' needs 5 fields"),
        ({"timeZone": "Europe/Atlantis"}, "spec.schedules[1].timeZone: 'Europe/Atlantis' is not"),
        ({"path": "tasks/x"}, "spec.schedules[1].path: 'tasks/x' is not absolute"),
        ({"path": "https://evil.example/x"}, "spec.schedules[1].path: 'https://evil.example/x'"),
        ({"path": "//evil.example/x"}, "spec.schedules[1].path: '//evil.example/x' names a host"),
        ({"path": "/../admin"}, "spec.schedules[1].path: '/../admin' has a '.' or '..'"),
        ({"name": "nightly"}, "spec.schedules[1].name: 'nightly' is already the name"),
    ],
)
async def test_the_validating_webhook_refuses(
    injector: Injector, entry: dict[str, Any], expected: str
) -> None:
    second = {"name": "second", "schedule": "*/5 * * * *", "path": "/tasks/second", **entry}
    spec = {**BASE, "schedules": [NIGHTLY, second]}
    answer = await injector.validate(ready_binding("team-a", "bad", spec, status=None))
    answer.assert_binding_refused(expected)


async def test_a_good_schedule_is_admitted(injector: Injector) -> None:
    answer = await injector.validate(ready_binding("team-a", "good", SCHEDULED, status=None))
    assert answer.allowed, answer.message


async def test_the_injected_sidecar_routes_the_schedules_tasks(injector: Injector) -> None:
    pod = replicaset_pod("orders")
    answer = await injector.mutate(pod, namespace="team-a")
    assert answer.allowed, answer.message
    result = patched(pod, answer.patch)
    sidecar = {**containers(result), **containers(result, "initContainers")}[SIDECAR_CONTAINER]
    assert env_of(sidecar)["CARRIER_WEBHOOK_TASKS"] == "nightly=/tasks/nightly,hourly=/h"
