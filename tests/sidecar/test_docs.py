"""docs/observability.md and the code must agree on every metric and stats field."""

from __future__ import annotations

import re
from pathlib import Path

from carrier_sidecar.metrics import Metrics
from carrier_sidecar.statlog import stat_fields

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
ROW = re.compile(r"^\| `(carrier_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def documented() -> dict[str, tuple[str, set[str]]]:
    return {
        name: (kind, set(re.findall(r"`(\w+)`", labels)))
        for name, kind, labels in ROW.findall(DOC.read_text(encoding="utf-8"))
        if not name.startswith("carrier_operator_")  # the operator's: tests/operator
    }


def exposed() -> dict[str, tuple[str, set[str]]]:
    found: dict[str, tuple[str, set[str]]] = {}
    for family in Metrics().registry.collect():
        if not family.name.startswith("carrier_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        found[name] = (family.type, labels)
    return found


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    assert documented() == exposed()


async def test_every_stats_field_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The stats log line") :]
    missing = [key for key in stat_fields(Metrics()) if f'"{key}"' not in section]
    assert missing == []
