"""A CarrierBinding spec renders through the sidecar's own Settings, with errors naming spec fields."""

from __future__ import annotations

from typing import Any

import pytest

from carrier_operator.binding import (
    BindingError,
    binding_paths,
    check_sidecar_env,
    render_env,
    render_settings,
    rendered_from,
    settings_hash,
)
from carrier_sidecar.settings import Settings, injected_fields

SPEC: dict[str, Any] = {
    "queue": {"name": "orders", "region": "eu-west-1"},
    "webhook": {"port": 8080, "path": "/events?src=sqs"},
    "delivery": {"batchSize": 10, "visibilityTimeout": "2m", "heartbeat": False},
    "healthCheck": {"path": "healthz", "interval": 5},
}


def test_every_setting_has_a_unique_binding_path() -> None:
    """Each setting has its own spec path, or says which spec part the operator renders it from
    (CARRIER_WEBHOOK_TASKS comes from spec.schedules, not from a path of its own)."""
    paths = binding_paths()
    derived = sorted(name for name in Settings.model_fields if rendered_from(name) is not None)
    assert derived == ["webhook_tasks"]
    assert {rendered_from(name) for name in derived} == {"schedules"}
    assert injected_fields() == {"drain_token"}  # per pod: the injector sets it
    per_binding = set(Settings.model_fields) - injected_fields() - set(derived)
    assert sorted(paths.values()) == sorted(per_binding)
    assert len(paths) == len(per_binding)


def test_spec_renders_to_the_sidecar_env() -> None:
    assert render_env(SPEC) == {
        "CARRIER_SQS_QUEUE_NAME": "orders",
        "CARRIER_SQS_REGION": "eu-west-1",
        "CARRIER_SQS_BATCH_SIZE": "10",
        "CARRIER_SQS_VISIBILITY_TIMEOUT": "2m",
        "CARRIER_SQS_HEARTBEAT": "false",
        "CARRIER_WEBHOOK_ENDPOINT": "http://127.0.0.1:8080/events?src=sqs",
        "CARRIER_WEBHOOK_HEALTH_CHECK_ENDPOINT": "http://127.0.0.1:8080/healthz",
        "CARRIER_WEBHOOK_HEALTH_CHECK_INTERVAL": "5s",
    }


def test_rendered_env_loads_back_into_the_same_settings() -> None:
    assert Settings.load(render_env(SPEC)) == render_settings(SPEC)


def test_a_full_url_wins_over_port_and_path() -> None:
    spec = {
        "queue": {"url": "https://sqs.eu-west-1.amazonaws.com/1/q"},
        "webhook": {"url": "http://w:1/x"},
    }
    assert render_env(spec)["CARRIER_WEBHOOK_ENDPOINT"] == "http://w:1/x"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"queue": {"name": "q"}, "delivery": {"batchSize": 11}},
            "spec.delivery.batchSize: input should be less than or equal to 10",
        ),
        (
            {"queue": {"name": "q", "url": "http://h/1/q"}},
            "spec.queue.url: set either it or spec.queue.name, not both",
        ),
        ({"queue": {}}, "spec.queue.name: set the queue name (or spec.queue.url); neither is set"),
        (
            {"queue": {"name": "q"}, "webhook": {"url": "nope"}},
            "spec.webhook: 'nope' is not an http(s) URL with a host",
        ),
        (
            {"queue": {"name": "q"}, "delivery": {"waitTime": "forever"}},
            "spec.delivery.waitTime: invalid duration",
        ),
        (
            {"queue": {"name": "q"}, "healthCheck": {"path": "/h"}},
            "spec.healthCheck.path: needs spec.webhook.port",
        ),
    ],
)
def test_invalid_specs_name_the_spec_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(BindingError) as caught:
        render_settings(spec)
    assert str(caught.value).startswith(message), str(caught.value)


def test_settings_hash_is_stable_and_order_independent() -> None:
    env = render_env(SPEC)
    assert settings_hash(env) == settings_hash(dict(reversed(list(env.items()))))
    changed = {**SPEC, "delivery": {**SPEC["delivery"], "batchSize": 9}}
    assert settings_hash(render_env(changed)) != settings_hash(env)
    assert len(settings_hash(env)) == 16


def test_webhook_format_has_its_place_in_a_binding() -> None:
    spec = {"queue": {"name": "q"}, "webhook": {"format": "cloudevents"}}
    assert render_env(spec)["CARRIER_WEBHOOK_FORMAT"] == "cloudevents"
    with pytest.raises(BindingError) as caught:
        render_settings({"queue": {"name": "q"}, "webhook": {"format": "xml"}})
    assert str(caught.value).startswith("spec.webhook.format: input should be 'raw' or"), str(
        caught.value
    )


def test_task_routes_are_not_set_by_hand_in_a_binding() -> None:
    """CARRIER_WEBHOOK_TASKS is the operator's to render from spec.schedules, never sidecar.env."""
    spec = {
        "queue": {"name": "q"},
        "sidecar": {"env": [{"name": "CARRIER_WEBHOOK_TASKS", "value": "a=/a"}]},
    }
    with pytest.raises(BindingError) as caught:
        check_sidecar_env(spec)
    assert str(caught.value) == (
        "spec.sidecar.env[0]: CARRIER_WEBHOOK_TASKS is a Carrier setting the operator renders "
        "from spec.schedules; it is not set by hand in a binding"
    )
    assert "CARRIER_WEBHOOK_TASKS" not in render_env({"queue": {"name": "q"}})
