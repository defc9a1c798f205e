"""docs/observability.md and the code must agree on every metric and stats field."""

from __future__ import annotations

from carrier_sidecar.metrics import Metrics
from carrier_sidecar.statlog import stat_fields
from tests.support import metric_docs


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    documented = metric_docs.documented("carrier_", excluding="carrier_operator_")
    assert documented == metric_docs.exposed(Metrics().registry, "carrier_")


async def test_every_stats_field_is_documented() -> None:
    text = metric_docs.DOC.read_text(encoding="utf-8")
    section = text[text.index("## The stats log line") :]
    missing = [key for key in stat_fields(Metrics()) if f'"{key}"' not in section]
    assert missing == []
