"""Issue 11 §5 over real HTTPS through kopf's admission machinery: only a CREATE is mutated,
and refusals are the user's problem, logged at WARNING at most once a minute, not at ERROR."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from carrier_operator.admission import RefusalLog
from carrier_operator.config import MUTATE_PODS_ID
from tests.injector.harness import (
    Injector,
    pod_review,
    ready_binding,
    replicaset_pod,
    running_injector,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def injector() -> AsyncIterator[Injector]:
    async with running_injector(bindings=[ready_binding("team-a", "orders")]) as running:
        yield running


async def test_an_update_review_is_never_mutated(injector: Injector) -> None:
    """A pod's spec is immutable: the same labelled pod without the sidecar gets a patch on
    CREATE and none on UPDATE, whatever the webhook configuration sent."""
    pod = replicaset_pod("orders")
    pod["metadata"]["name"] = "worker-1"
    created = await injector.mutate(pod, namespace="team-a")
    assert created.allowed
    assert created.patch, "CREATE is injected"
    for operation in ("UPDATE", "CONNECT"):
        review = pod_review(pod, namespace="team-a", operation=operation)
        review["request"]["oldObject"] = pod
        answer = await injector.post(f"/{MUTATE_PODS_ID}", review)
        assert answer.status == 200
        assert answer.allowed, answer.message
        assert "patch" not in answer.response, operation


async def test_refusals_warn_once_per_minute_and_admissions_log_at_debug(
    injector: Injector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):  # a ReplicaSet retrying a refused pod
        answer = await injector.mutate(replicaset_pod("missing-binding"), namespace="team-a")
        assert not answer.allowed
    admitted = await injector.mutate(replicaset_pod("orders"), namespace="team-a")
    assert admitted.allowed
    ours = [r for r in caplog.records if r.name == "carrier_operator.admission"]
    refusals = [r for r in ours if r.levelno == logging.WARNING]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert refusals[0].getMessage() == "refused a pod using the binding"
    assert getattr(refusals[0], "binding", None) == "missing-binding"
    assert 'CarrierBinding "missing-binding" not found' in getattr(refusals[0], "reason", "")
    assert any(
        r.levelno == logging.DEBUG
        and r.getMessage() == "admitted a pod with the sidecar"
        and getattr(r, "binding", None) == "orders"
        for r in ours
    )
    kopf_lines = [r.getMessage() for r in caplog.records if r.name.startswith("kopf")]
    assert not [m for m in kopf_lines if "failed permanently" in m], kopf_lines
    assert not [m for m in kopf_lines if f"Handler '{MUTATE_PODS_ID}' succeeded" in m]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_refusal_log_window_is_per_namespace_binding_and_reason() -> None:
    now = [0.0]
    log = RefusalLog(window=60, clock=lambda: now[0])
    assert log.refused("a", "b", "gone")
    assert not log.refused("a", "b", "gone")
    assert log.refused("a", "b", "invalid"), "another reason"
    assert log.refused("other", "b", "gone"), "another namespace"
    now[0] = 59.9
    assert not log.refused("a", "b", "gone")
    now[0] = 60.0
    assert log.refused("a", "b", "gone"), "a minute later, once more"
