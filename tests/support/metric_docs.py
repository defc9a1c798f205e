"""docs/observability.md's metric tables against a live registry: one reader for both the
sidecar's and the operator's table tests."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
ROW = re.compile(r"^\| `(carrier_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)

Table = dict[str, tuple[str, set[str]]]  # name → (type, label names)


def documented(prefix: str, *, excluding: str | None = None) -> Table:
    """The table rows whose metric names start with ``prefix`` (and not ``excluding``)."""
    return {
        name: (kind, set(re.findall(r"`(\w+)`", labels)))
        for name, kind, labels in ROW.findall(DOC.read_text(encoding="utf-8"))
        if name.startswith(prefix) and not (excluding and name.startswith(excluding))
    }


def exposed(registry: CollectorRegistry, prefix: str) -> Table:
    """Every family the registry renders, named as scraped (counters with ``_total``)."""
    found: Table = {}
    for family in registry.collect():
        if not family.name.startswith(prefix):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        found[name] = (family.type, labels)
    return found
