"""The real ``helm`` binaries (fetched by .ci/tools.sh) and the chart scenarios the tests render."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "carrier"
NAMESPACE = "carrier-system"
RELEASE = "carrier"
_TOOLS = ROOT / ".cache" / "tools" / "bin"

# One install per option worth proving: each renders, lints and validates on its own.
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": {"certManager": {"enabled": True}},
    "cert-manager-issuer": {
        "certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}
    },
    "pod-monitor": {"podMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "observability": {
        "metrics": {
            "serviceMonitor": {"enabled": True},
            "dashboard": {"enabled": True},
            "prometheusRule": {"enabled": True},
        }
    },
    "pdb-off": {"replicaCount": 2, "podDisruptionBudget": {"enabled": False}},
    "rollout": {"rollout": {"enabled": True}},
    "autoscaling": {"autoscaling": {"enabled": True}},
    "replicas-2": {"replicaCount": 2},
    "namespaces": {"operator": {"namespaces": ["team-a", "team-b"]}, "replicaCount": 2},
    "fail-open": {"webhook": {"failurePolicy": "Ignore", "reinvocationPolicy": "Never"}},
    "native-never": {
        "sidecar": {"nativeSidecar": "never", "onMissingBinding": "admit"},
        "webhook": {"validateBindings": False},
    },
    "own-service-account": {
        "serviceAccount": {"create": False, "name": "platform-operator"},
        "rbac": {"create": False},
    },
    "scheduling": {
        "imagePullSecrets": [{"name": "regcred"}],
        "podAnnotations": {"example.com/team": "queues"},
        "podLabels": {"team": "queues"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "carrier"}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "carrier"}},
            }
        ],
        "operator": {"extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]},
    },
    "renamed": {
        "fullnameOverride": "queues",
        "serviceAccount": {"name": "queues-sa"},
        "webhook": {"mutatingConfigurationName": "queues-injector"},
        "image": {"tag": "1.2.3"},
    },
}


def helm_binary(major: int) -> str | None:
    """``helm3``/``helm4`` from PATH or the tools cache; None when absent."""
    name = f"helm{major}"
    return shutil.which(name) or (str(_TOOLS / name) if (_TOOLS / name).exists() else None)


def require_helm(major: int) -> str:
    """The binary, or skip the test (fail it under CI, where `make tools` always provides it)."""
    binary = helm_binary(major)
    if binary is None:
        missing = f"helm{major} not found: run `make tools` (.ci/tools.sh)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return binary


def run_helm(
    helm: str, *args: str, values: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as tmp:
        extra: list[str] = []
        if values is not None:
            path = Path(tmp) / "values.yaml"
            path.write_text(yaml.safe_dump(values))
            extra = ["-f", str(path)]
        env = {**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp}
        return subprocess.run(
            [helm, *args, *extra], capture_output=True, text=True, timeout=60, env=env, check=False
        )


@functools.lru_cache(maxsize=64)
def _render(helm: str, values_json: str) -> tuple[str, ...]:
    done = run_helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--include-crds",
        values=json.loads(values_json),
    )
    if done.returncode:
        raise AssertionError(f"helm template failed: {done.stderr}")
    return (done.stdout,)


def render(helm: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifests ``helm template`` renders for these values (cached per helm and values)."""
    text = _render(helm, json.dumps(values, sort_keys=True))[0]
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(
    manifests: list[dict[str, Any]], kind: str, name: str | None = None
) -> list[dict[str, Any]]:
    return [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]


def one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
