"""docs/observability.md's operator metrics table and the code must agree, name by name."""

from __future__ import annotations

import re
from pathlib import Path

from carrier_operator.dead_letters import DeadLetter
from carrier_operator.metrics import OperatorMetrics
from carrier_operator.queues import QueueProbe
from carrier_operator.status import Observed, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
ROW = re.compile(r"^\| `(carrier_operator_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def documented() -> dict[str, tuple[str, set[str]]]:
    return {
        name: (kind, set(re.findall(r"`(\w+)`", labels)))
        for name, kind, labels in ROW.findall(DOC.read_text(encoding="utf-8"))
    }


def exposed() -> dict[str, tuple[str, set[str]]]:
    """Every family with its labels, from a registry with one binding noted (per-binding
    families have no samples, hence no labels to read, until there is one)."""
    metrics = OperatorMetrics()
    obs = Observed(settings_hash="h", env_count=1, checked_at="2026-12-02T00:00:00Z")
    obs.probe = QueueProbe(True, "QueueFound", "ok", "u", 1, 0, 0, DeadLetter("R", "m", "a", 3, 0))
    render(obs, "2026-12-02T00:00:00Z")
    metrics.watch(lambda: [(("ns", "b"), obs)], lambda: True)
    metrics.schedule_sent("ns", "b", "s", "sent")
    metrics.queue_check_error("AccessDenied")  # its children exist once a reason is seen
    found: dict[str, tuple[str, set[str]]] = {}
    for family in metrics.registry.collect():
        if not family.name.startswith("carrier_operator_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        found[name] = (family.type, labels)
    return found


def test_every_operator_metric_is_documented_with_its_type_and_labels() -> None:
    assert documented() == exposed()
