"""docs/observability.md's operator metrics table and the code must agree, name by name."""

from __future__ import annotations

from carrier_operator.dead_letters import DeadLetter
from carrier_operator.metrics import OperatorMetrics
from carrier_operator.queues import QueueProbe
from carrier_operator.status import Observed, render
from tests.support import metric_docs


def exposed() -> metric_docs.Table:
    """Every family with its labels, from a registry with one binding noted (per-binding
    families have no samples, hence no labels to read, until there is one)."""
    metrics = OperatorMetrics()
    obs = Observed(settings_hash="h", env_count=1, checked_at="2026-12-02T00:00:00Z")
    obs.probe = QueueProbe(True, "QueueFound", "ok", "u", 1, 0, 0, DeadLetter("R", "m", "a", 3, 0))
    render(obs, "2026-12-02T00:00:00Z")
    metrics.watch(lambda: [(("ns", "b"), obs)], lambda: True)
    metrics.schedule_sent("ns", "b", "s", "sent")
    metrics.queue_check_error("AccessDenied")  # its children exist once a reason is seen
    return metric_docs.exposed(metrics.registry, "carrier_operator_")


def test_every_operator_metric_is_documented_with_its_type_and_labels() -> None:
    assert metric_docs.documented("carrier_operator_") == exposed()
