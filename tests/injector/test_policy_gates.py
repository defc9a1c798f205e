"""Each binding rule (``validation.binding_problems``) at all three gates.

The validating webhook is not enough: a binding stored before a rule was turned on, or with
``webhook.validateBindings=false``, reaches the API server unchecked. So the same rules, with
the same operator config, must also stop the injector (the pod is denied, saying why) and the
reconciler (the binding's ``Ready`` condition is ``False``/``InvalidSpec`` with the message).
Here the bindings are stored straight into the fake API (as an old or unvalidated binding
would be), with a ``Ready`` status the injector would otherwise trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from carrier_operator.config import OperatorSettings
from tests.injector.harness import READY, ready_binding, replicaset_pod, running_injector
from tests.support.kube import BINDINGS, binding_object, condition, fake_kube, running_operator
from tests.support.servers import MotoServer, eventually, free_port

pytestmark = pytest.mark.slow  # real servers or processes

NAMESPACE = "team-a"


@dataclass(frozen=True)
class Rule:
    name: str
    spec: dict[str, Any]
    fragment: str
    remote: bool = False  # CARRIER_OPERATOR_ALLOW_REMOTE_WEBHOOKS for this rule


RULES = (
    Rule(
        "remote-webhook",
        {"webhook": {"url": "https://exfil.example.com/x"}},
        "spec.webhook: 'https://exfil.example.com/x' is not the pod's loopback",
    ),
    Rule(
        "remote-health",
        {"webhook": {"port": 8080}, "healthCheck": {"url": "http://exfil.example.com/h"}},
        "spec.healthCheck: 'http://exfil.example.com/h' is not the pod's loopback",
    ),
    Rule(
        "other-namespace",
        {"webhook": {"url": "http://worker.team-b.svc:8080/"}},
        "points at namespace 'team-b'",
        remote=True,
    ),
    Rule(
        "one-address",
        {"webhook": {"port": 8080}, "sidecar": {"httpAddr": "127.0.0.1:9102"}},
        "spec.sidecar.httpAddr: '127.0.0.1:9102' listens on 127.0.0.1 only",
    ),
    Rule(
        "port-clash",
        {"webhook": {"port": 8080}, "sidecar": {"httpAddr": ":8080"}},
        "port 8080 is the worker's webhook port too",
    ),
    Rule(
        "empty-image",
        {"webhook": {"port": 8080}, "sidecar": {"image": " "}},
        "spec.sidecar.image: must be a non-empty image reference",
    ),
    Rule(
        "bad-quantity",
        {"webhook": {"port": 8080}, "sidecar": {"resources": {"limits": {"memory": "lots"}}}},
        "spec.sidecar.resources.limits.memory: 'lots' is not a quantity",
    ),
    Rule(
        "bad-env-name",
        {"webhook": {"port": 8080}, "sidecar": {"env": [{"name": "1x", "value": "a"}]}},
        "'1x' is not a valid environment variable name",
    ),
    Rule(
        "settings-model",
        {"webhook": {"port": 8080}, "delivery": {"retryBackoffBase": "20m"}},
        "spec.delivery.retryBackoffBase: must not exceed spec.delivery.retryBackoffMax",
        # the sidecar's own model: also one of binding_problems' rules
        remote=False,
    ),
)


def rules(remote: bool) -> list[Rule]:
    return [rule for rule in RULES if rule.remote is remote]


def spec_of(rule: Rule, queue: dict[str, Any]) -> dict[str, Any]:
    return {"queue": queue, **rule.spec}


@pytest.mark.parametrize("remote", [False, True], ids=["local-only", "remote-allowed"])
async def test_the_validating_webhook_and_the_injector_refuse_each_rule(remote: bool) -> None:
    stored = [
        ready_binding(NAMESPACE, rule.name, spec_of(rule, {"name": f"{rule.name}-q"}), READY)
        for rule in rules(remote)
    ]
    async with running_injector(bindings=stored, allow_remote_webhooks=remote) as injector:
        for rule, obj in zip(rules(remote), stored, strict=True):
            review = await injector.validate(obj)
            assert not review.allowed, rule.name
            assert rule.fragment in review.message, (rule.name, review.message)

            answer = await injector.mutate(replicaset_pod(rule.name), namespace=NAMESPACE)
            assert not answer.allowed, f"{rule.name}: a pod got a sidecar from a bad binding"
            assert answer.patch == []
            assert answer.message.startswith(
                f'cannot inject the Carrier sidecar: CarrierBinding "{rule.name}" breaks '
                "the operator's rules: "
            ), answer.message
            assert rule.fragment in answer.message, (rule.name, answer.message)
            assert answer.response["status"]["code"] == 403


async def test_the_injector_admits_a_good_binding_next_to_them() -> None:
    """The gate is the rules, not a blanket refusal."""
    good = ready_binding(NAMESPACE, "good", {"queue": {"name": "q"}, "webhook": {"port": 8080}})
    async with running_injector(bindings=[good]) as injector:
        answer = await injector.mutate(replicaset_pod("good"), namespace=NAMESPACE)
        assert answer.allowed, answer.message
        assert answer.patch != []


@pytest.mark.parametrize("remote", [False, True], ids=["local-only", "remote-allowed"])
async def test_the_reconciler_marks_each_rule_invalid(moto: MotoServer, remote: bool) -> None:
    config = OperatorSettings(
        log_format="plain",
        queue_check_interval=0.5,
        liveness_port=free_port(),
        webhook_port=free_port(),
        allow_remote_webhooks=remote,
    )
    queue = {"name": "gate-q", "region": "us-east-1", "endpoint": moto.endpoint}
    async with fake_kube(namespaces=("default", NAMESPACE)) as kube, running_operator(config):
        for rule in rules(remote):
            await kube.create(BINDINGS, binding_object(NAMESPACE, rule.name, spec_of(rule, queue)))
        for rule in rules(remote):

            def ready(name: str = rule.name) -> dict[str, Any]:
                return condition(kube.status(BINDINGS, NAMESPACE, name), "Ready")

            await eventually(lambda: ready().get("reason") == "InvalidSpec", 20, rule.name)
            assert ready()["status"] == "False"
            assert rule.fragment in ready()["message"], (rule.name, ready()["message"])
