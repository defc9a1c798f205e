"""bench/dashboard_sample.py draws what the dashboard asks: every panel, variables filled in."""

from __future__ import annotations

import json

from bench.dashboard_sample import DASHBOARD, legend, panel_queries, prometheus_config


def test_every_panel_query_is_taken_from_the_dashboard_with_its_variables_filled() -> None:
    variables = {
        "namespace": "shop",
        "binding": "orders",
        "workload": ".*",
        "__rate_interval": "10s",
    }
    panels = panel_queries(variables)
    shipped = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    assert [title for title, _ in panels] == [p["title"] for p in shipped]
    for _title, targets in panels:
        assert targets
        for expr, _fmt in targets:
            assert "$" not in expr
            assert 'namespace="shop"' in expr


def test_scrapes_label_like_the_chart_monitors() -> None:
    config = prometheus_config(9102, 8080)
    sidecars, operator = config["scrape_configs"]
    assert sidecars["static_configs"][0]["labels"] == {
        "namespace": "shop",
        "binding": "orders",
        "pod": "orders-worker-0",
    }
    assert operator["honor_labels"] is True
    assert legend("{{state}}", {"state": "visible"}) == "visible"
