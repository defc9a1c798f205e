"""The worker's preStop drain hook and the grace-period warning (pure: pod in, patch out)."""

from __future__ import annotations

from typing import Any

import pytest

from carrier_operator.config import SIDECAR_CONTAINER, OperatorSettings
from carrier_operator.drain_hook import TOKEN_ENV
from carrier_operator.injection import Binding, plan_injection
from carrier_sidecar.drain import DRAIN_PATH, TOKEN_HEADER
from tests.injector.conftest import assert_valid_pod, containers, env_of, patched
from tests.injector.harness import READY, replicaset_pod

CONFIG = OperatorSettings()
SPEC = {"queue": {"name": "orders-q"}, "webhook": {"port": 8080}}


def binding(**delivery: Any) -> Binding:
    spec: dict[str, Any] = {**SPEC, "delivery": delivery} if delivery else dict(SPEC)
    return Binding("orders", "team-a", spec, READY)


def pod_with(*workers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    pod = replicaset_pod("orders", containers=list(workers) or None, **spec)
    pod["metadata"]["namespace"] = "team-a"
    return pod


def inject(pod: dict[str, Any], bound: Binding | None = None, *, native: bool = True) -> Any:
    plan = plan_injection(pod, bound or binding(), CONFIG, native=native)
    result = patched(pod, plan.patch)
    assert_valid_pod(result)
    return result, plan.warnings


def sidecar_of(pod: dict[str, Any], native: bool = True) -> dict[str, Any]:
    return containers(pod, "initContainers" if native else "containers")[SIDECAR_CONTAINER]


@pytest.mark.parametrize("native", [True, False])
def test_worker_gets_a_prestop_that_drains_the_sidecar_with_its_token(native: bool) -> None:
    pod, warnings = inject(pod_with(), native=native)
    token = env_of(sidecar_of(pod, native))[TOKEN_ENV]
    assert isinstance(token, str)
    assert len(token) >= 32
    hook = containers(pod)["worker"]["lifecycle"]["preStop"]["httpGet"]
    assert hook == {
        "path": DRAIN_PATH,
        "port": 9102,
        "scheme": "HTTP",
        "httpHeaders": [{"name": TOKEN_HEADER, "value": token}],
    }
    assert "host" not in hook, "the kubelet must call the pod IP, where the sidecar listens"
    assert warnings == ()


def test_each_pod_gets_its_own_token() -> None:
    tokens = {env_of(sidecar_of(inject(pod_with())[0]))[TOKEN_ENV] for _ in range(5)}
    assert len(tokens) == 5


def test_the_hook_follows_the_sidecar_http_port() -> None:
    bound = Binding("orders", "team-a", {**SPEC, "sidecar": {"httpAddr": ":9300"}}, READY)
    pod, _ = inject(pod_with(), bound)
    assert containers(pod)["worker"]["lifecycle"]["preStop"]["httpGet"]["port"] == 9300


def test_only_the_containers_serving_the_webhook_port_get_the_hook() -> None:
    worker = {"name": "worker", "image": "w:1", "ports": [{"containerPort": 8080}]}
    proxy = {"name": "proxy", "image": "p:1", "ports": [{"containerPort": 15001}]}
    pod, _ = inject(pod_with(proxy, worker))
    assert "lifecycle" in containers(pod)["worker"]
    assert "lifecycle" not in containers(pod)["proxy"]


def test_without_declared_ports_every_container_gets_the_hook() -> None:
    post_start = {"exec": {"command": ["x"]}}
    one: dict[str, Any] = {"name": "one", "image": "a:1", "lifecycle": {"postStart": post_start}}
    two = {"name": "two", "image": "b:1"}
    pod, _ = inject(pod_with(one, two))
    assert containers(pod)["one"]["lifecycle"]["postStart"] == post_start
    for name in ("one", "two"):
        assert containers(pod)[name]["lifecycle"]["preStop"]["httpGet"]["path"] == DRAIN_PATH


def test_an_existing_prestop_is_kept_and_named_in_a_warning_with_the_token_env() -> None:
    own = {"exec": {"command": ["/bin/graceful-stop"]}}
    worker = {"name": "worker", "image": "w:1", "lifecycle": {"preStop": own}, "env": []}
    pod, warnings = inject(pod_with(worker))
    assert containers(pod)["worker"]["lifecycle"] == {"preStop": own}
    token = env_of(sidecar_of(pod))[TOKEN_ENV]
    assert env_of(containers(pod)["worker"])[TOKEN_ENV] == token, "the hook can read the token"
    assert len(warnings) == 1
    assert "'worker' already has a preStop hook, kept unchanged" in warnings[0]
    assert TOKEN_ENV in warnings[0]
    assert f"http://127.0.0.1:9102{DRAIN_PATH}" in warnings[0]


def test_no_http_address_means_no_hook_and_a_warning() -> None:
    bound = Binding("orders", "team-a", {**SPEC, "sidecar": {"httpAddr": "none"}}, READY)
    pod, warnings = inject(pod_with(), bound)
    assert "lifecycle" not in containers(pod)["worker"]
    assert TOKEN_ENV not in env_of(sidecar_of(pod))
    assert any("no drain endpoint" in w for w in warnings)


@pytest.mark.parametrize(
    ("grace", "shutdown", "warned"),
    [
        (None, None, False),  # 30 s default covers 25 s + 5 s
        (30, "25s", False),
        (29, "25s", True),
        (None, "40s", True),
        (60, "40s", False),
        (5, "0s", False),
    ],
)
def test_grace_period_must_cover_the_drain_and_the_worker(
    grace: int | None, shutdown: str | None, warned: bool
) -> None:
    extra = {} if grace is None else {"terminationGracePeriodSeconds": grace}
    pod = pod_with(**extra)
    if grace is None:
        del pod["spec"]["terminationGracePeriodSeconds"]
    bound = binding(shutdownTimeout=shutdown) if shutdown else binding()
    _, warnings = inject(pod, bound)
    found = [w for w in warnings if "terminationGracePeriodSeconds" in w]
    assert bool(found) is warned, warnings
    if warned:
        assert "plus 5s for the worker's own shutdown" in found[0]
