"""Read an operator replica's /metrics the way Prometheus would (prometheus_client's parser)."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.operators import Replica

Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(replica: Replica) -> Samples:
    """The replica's /metrics, parsed by prometheus_client: sample name -> (labels, value)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{replica.liveness_port}/metrics") as answer,
    ):
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = await answer.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> Any:
    """The one sample of ``name`` whose labels include ``labels``, or None."""
    found = [v for got, v in samples.get(name, []) if labels.items() <= got.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None
