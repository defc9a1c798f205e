"""The sidecar's memory from the binding's concurrency (``carrier_sidecar.sizing``), pure."""

from __future__ import annotations

from typing import Any

import pytest

from carrier_operator.config import SIDECAR_CONTAINER, OperatorSettings
from carrier_operator.injection import Binding, plan_injection
from carrier_operator.resources import quantity_bytes
from carrier_sidecar.settings import Settings
from carrier_sidecar.sizing import MIB, memory_bound, memory_bound_for
from tests.injector.conftest import containers, patched
from tests.injector.harness import READY, replicaset_pod

CONFIG = OperatorSettings()


def injected(delivery: dict[str, Any], **sidecar: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    spec: dict[str, Any] = {"queue": {"name": "q"}, "webhook": {"port": 8080}}
    spec["delivery"] = delivery
    if sidecar:
        spec["sidecar"] = sidecar
    pod = replicaset_pod("orders")
    plan = plan_injection(pod, Binding("orders", "team-a", spec, READY), CONFIG, native=True)
    sidecar_container = containers(patched(pod, plan.patch), "initContainers")[SIDECAR_CONTAINER]
    return sidecar_container["resources"], plan.warnings


@pytest.mark.parametrize(
    ("text", "size"),
    [("64Mi", 64 * MIB), ("1Gi", 1024 * MIB), ("1G", 10**9), ("129e6", 129 * 10**6), ("x", None)],
)
def test_memory_quantities(text: str, size: int | None) -> None:
    assert quantity_bytes(text) == size


def test_the_formula() -> None:
    # base + factor x receivers x (workers + batch) x 1 MiB
    assert memory_bound_for(1, 1, 1) == 84 * MIB + 8 * MIB
    assert memory_bound_for(3, 10, 10) == 84 * MIB + 4 * 60 * MIB
    settings = Settings.from_fields(
        {"sqs_queue_name": "q", "sqs_receivers": 2, "sqs_receiver_workers": 5, "sqs_batch_size": 3}
    )
    assert memory_bound(settings) == memory_bound_for(2, 5, 3)


def test_a_small_binding_keeps_the_configured_defaults_where_they_suffice() -> None:
    resources, warnings = injected({})
    assert resources["limits"]["memory"] == CONFIG.sidecar_memory_limit  # 128Mi >= 92Mi
    assert resources["requests"]["memory"] == "92Mi"  # raised from 64Mi to the bound
    assert resources["requests"]["cpu"] == CONFIG.sidecar_cpu_request
    assert not [w for w in warnings if "memory" in w]


def test_a_busy_binding_gets_the_memory_its_concurrency_needs() -> None:
    resources, _ = injected({"receivers": 3, "workersPerReceiver": 10, "batchSize": 10})
    assert resources["limits"]["memory"] == "324Mi"  # 84 + 4 x 3 x (10 + 10)
    assert resources["requests"]["memory"] == "324Mi"
    assert quantity_bytes(resources["limits"]["memory"]) == memory_bound_for(3, 10, 10)


def test_explicit_resources_win_with_a_warning_when_below_the_bound() -> None:
    explicit = {"limits": {"memory": "128Mi"}, "requests": {"memory": "64Mi"}}
    delivery = {"receivers": 3, "workersPerReceiver": 10, "batchSize": 10}
    resources, warnings = injected(delivery, resources=explicit)
    assert resources == explicit
    memory = [w for w in warnings if "limits.memory" in w]
    assert len(memory) == 1
    assert "128Mi is below" in memory[0]
    assert "3 receiver(s) x (10 workers + batch 10)" in memory[0]
    assert "324Mi" in memory[0]
    _, warnings = injected(delivery, resources={"limits": {"memory": "1Gi"}})
    assert not [w for w in warnings if "limits.memory" in w]
    _, warnings = injected(delivery, resources={"requests": {"cpu": "50m"}})  # no limit: none
    assert not [w for w in warnings if "limits.memory" in w]
