"""The chart's metrics Service port, ServiceMonitor, Grafana dashboard and PrometheusRule
(issue 16 §1 and §4), rendered by the real helm; rules checked by promtool; every metric they
name exists in the sidecar's or the operator's registry, or is a listed kube-state-metrics one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from carrier_operator.config import SIDECAR_CONTAINER
from carrier_operator.metrics import OperatorMetrics
from carrier_sidecar.metrics import Metrics

from .helm import CHART, find, render

ALL_ON = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "dashboard": {"enabled": True, "annotations": {"grafana_folder": "Carrier"}},
        "prometheusRule": {
            "enabled": True,
            "deliveryFailureRatio": 0.25,
            "queueWaitSeconds": 120,
            "alertLabels": {"team": "queues"},
        },
    },
    "podMonitor": {"enabled": True},
}
# Metrics the dashboard and alerts take from kube-state-metrics, not from Carrier.
KUBE_STATE_METRICS = frozenset(
    {
        "kube_deployment_status_replicas",
        "kube_deployment_spec_replicas",
        "kube_pod_container_status_restarts_total",
    }
)
_METRIC = re.compile(r"\b(?:carrier|kube)_[a-z0-9_]+")


def _sample_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry exposes (counters' _total, histograms' _bucket/_sum/_count)."""
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}{end}" for end in ("_bucket", "_sum", "_count"))
    return names


def known_metrics() -> set[str]:
    return _sample_names(Metrics().registry) | _sample_names(OperatorMetrics().registry)


def _dashboard(helm: str) -> dict[str, Any]:
    (config_map,) = [
        m
        for m in find(render(helm, ALL_ON), "ConfigMap")
        if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Carrier"}
    (text,) = config_map["data"].values()
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard


def _rules(helm: str) -> list[dict[str, Any]]:
    (rule,) = find(render(helm, ALL_ON), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules: list[dict[str, Any]] = rule["spec"]["groups"][0]["rules"]
    return rules


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_the_service_exposes_the_metrics_port_and_the_service_monitor_scrapes_it(
    helm: str,
) -> None:
    manifests = render(helm, ALL_ON)
    (service,) = find(manifests, "Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    (deployment,) = find(manifests, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http-metrics"]["targetPort"] == "health"
    assert ports["http-metrics"]["port"] == named["health"]
    assert container["livenessProbe"]["httpGet"]["port"] in ("health", named["health"])

    (monitor,) = find(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "http-metrics",
        "path": "/metrics",
        "interval": "30s",
        "honorLabels": True,
    }
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()

    (pod_monitor,) = find(manifests, "PodMonitor")
    (relabel,) = pod_monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    assert relabel == {
        "sourceLabels": ["__meta_kubernetes_pod_label_carrier_amplify_security_binding"],
        "targetLabel": "binding",
    }


def test_nothing_is_rendered_when_off(helm: str) -> None:
    manifests = render(helm, {})
    assert find(manifests, "ServiceMonitor") == []
    assert find(manifests, "PrometheusRule") == []
    assert not [
        m for m in find(manifests, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]


def test_the_dashboard_has_a_panel_per_question_selected_per_binding(helm: str) -> None:
    dashboard = _dashboard(helm)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "binding", "workload"} <= set(variables)
    assert "carrier_operator_binding_condition" in variables["binding"]["definition"]
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {
        "Queue depth",
        "Dead-letter queue depth",
        "Deliveries by outcome",
        "Delivery latency (successful POSTs)",
        "Queue wait (now - SentTimestamp)",
        "SQS requests by action",
        "In-flight messages",
        "Replicas (autoscaling)",
    } <= titles
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            assert 'namespace="$namespace"' in expr, (panel["title"], expr)
            if "kube_deployment" not in expr:
                assert 'binding="$binding"' in expr, (panel["title"], expr)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_metric_the_dashboard_and_alerts_name_exists(helm: str) -> None:
    exprs = _exprs(_dashboard(helm)) + [rule["expr"] for rule in _rules(helm)]
    known = known_metrics() | KUBE_STATE_METRICS
    used = set()
    for expr in exprs:
        names = set(_METRIC.findall(expr))
        assert names, f"no metric named in {expr!r}"
        used |= names
    assert used - known == set()
    assert used >= KUBE_STATE_METRICS, "every listed kube-state-metrics name is used"


def test_the_metric_check_would_catch_a_typo() -> None:
    assert "carrier_deliveries_total" in known_metrics()
    assert "carrier_delivery_total" not in known_metrics()
    assert "carrier_operator_dead_letter_messages" in known_metrics()


def test_alerts_cover_the_issue_and_use_the_chart_thresholds(helm: str) -> None:
    rules = {rule["alert"]: rule for rule in _rules(helm)}
    assert set(rules) == {
        "CarrierDeadLettersRising",
        "CarrierBindingNotReady",
        "CarrierDeliveryFailureRatioHigh",
        "CarrierQueueWaitHigh",
        "CarrierSidecarRestarting",
    }
    assert rules["CarrierBindingNotReady"]["for"] == "10m"
    assert rules["CarrierDeliveryFailureRatioHigh"]["expr"].rstrip().endswith("> 0.25")
    assert rules["CarrierQueueWaitHigh"]["expr"].rstrip().endswith("> 120")
    assert f'container="{SIDECAR_CONTAINER}"' in rules["CarrierSidecarRestarting"]["expr"]
    for rule in rules.values():
        assert rule["labels"]["team"] == "queues"
        assert "{{ $labels.namespace }}" in rule["annotations"]["summary"]


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        missing = "promtool not found: apt-get install -y prometheus (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return found


def test_promtool_accepts_the_rules(helm: str, tmp_path: Path) -> None:
    promtool = _promtool()
    (rule,) = find(render(helm, ALL_ON), "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """Guards the test above: promtool does refuse a bad expression."""
    promtool = _promtool()
    path = tmp_path / "rules.yaml"
    bad = {"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "sum by (a (up)"}]}]}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0


def test_the_not_ready_alert_fires_after_ten_minutes(helm: str, tmp_path: Path) -> None:
    """promtool's rule unit test: a binding not Ready for 10 minutes fires, 9 minutes does not."""
    promtool = _promtool()
    (rule,) = find(render(helm, ALL_ON), "PrometheusRule")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    series = 'carrier_operator_binding_condition{namespace="a",binding="b",condition="Ready"}'
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": "0x20"}],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "CarrierBindingNotReady", "exp_alerts": []},
                    {
                        "eval_time": "11m",
                        "alertname": "CarrierBindingNotReady",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "namespace": "a",
                                    "binding": "b",
                                    "condition": "Ready",
                                    "severity": "warning",
                                    "team": "queues",
                                },
                                "exp_annotations": {
                                    "summary": "CarrierBinding a/b not Ready",
                                    "description": "CarrierBinding a/b has not been Ready for 10 "
                                    "minutes: its Ready condition says why (kubectl get cb b -n a "
                                    "-o wide).",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test), encoding="utf-8")
    done = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_file_is_the_one_shipped() -> None:
    shipped = json.loads((CHART / "dashboards" / "carrier-bindings.json").read_text("utf-8"))
    assert shipped["uid"] == "carrier-bindings"
