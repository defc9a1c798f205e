"""spec.autoscaling → KEDA objects (pure): checked field by field against KEDA's own schema and
the metadata names its scalers read, plus the rules the validating webhook applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from carrier_operator import autoscaling, crd
from carrier_operator.autoscaling import (
    Owner,
    Scaling,
    check_interval,
    depth_document,
    foreign_scalers,
    scaled_object,
    trigger_authentication,
)
from carrier_operator.binding import BINDING_LABEL, GROUP, KIND, VERSION, render_settings
from carrier_operator.validation import binding_problems

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = yaml.safe_load((FIXTURES / "keda_scaledobject_v1alpha1.schema.yaml").read_text())
SCALERS = yaml.safe_load((FIXTURES / "keda_scalers.yaml").read_text())
OWNER = Owner("team-a", "orders", "uid-1")
QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
BASE = "http://carrier-operator.carrier-system.svc:8080"
INT32 = (-(2**31), 2**31 - 1)
# keda.sh_triggerauthentications.yaml (kedacore/keda 976586f9e9d4b4aa7ef76b2efd6e2c2fc1f0562e):
# spec.podIdentity's properties and enums.
POD_IDENTITY_ENUMS = {
    "provider": {"azure-workload", "gcp", "aws", "aws-eks", "none"},
    "identityOwner": {"keda", "workload"},
}
POD_IDENTITY_FIELDS = {"provider", "roleArn", "identityOwner", "identityId", "identityTenantId"}


def _spec(**autoscaling_: Any) -> dict[str, Any]:
    section = {"target": {"name": "worker"}, "maxReplicas": 4, **autoscaling_}
    return {
        "queue": {"url": QUEUE_URL},
        "webhook": {"port": 8080},
        "autoscaling": section,
    }


def _render(spec: dict[str, Any], queue_url: str = QUEUE_URL) -> dict[str, Any]:
    settings = render_settings(spec)
    scaling = Scaling.of(spec["autoscaling"])
    return scaled_object(scaling, settings, queue_url, BASE, OWNER)


def _strict(obj: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """What jsonschema does not check of a structural schema: a key the schema does not declare
    (the API server would prune it silently) and int32 ranges."""
    problems: list[str] = []
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            if props is not None and key in props:
                problems += _strict(value, props[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                problems += _strict(value, extra, f"{where}.{key}")
            elif where != ".metadata":
                problems.append(f"{where}.{key}: not in KEDA's schema")
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            problems += _strict(item, schema.get("items") or {}, f"{where}[{i}]")
    elif (
        isinstance(obj, int) and schema.get("format") == "int32" and not INT32[0] <= obj <= INT32[1]
    ):
        problems.append(f"{where}: {obj} overflows int32")
    return problems


def _check_against_keda(obj: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(obj)
    assert _strict(obj, SCHEMA) == []
    assert obj["apiVersion"] == "keda.sh/v1alpha1"
    assert obj["kind"] == "ScaledObject"
    for trig in obj["spec"]["triggers"]:
        known = SCALERS[trig["type"]]
        metadata = trig["metadata"]
        assert set(known["required"]) <= set(metadata), trig["type"]
        assert set(metadata) <= set(known["required"]) | set(known["optional"]), trig["type"]
        for name, kind in (known.get("types") or {}).items():
            if name in metadata:
                _parses(metadata[name], kind)
        for name, allowed in (known.get("enums") or {}).items():
            if name in metadata:
                assert metadata[name] in allowed
        assert trig["metricType"] in {"AverageValue", "Value", "Utilization"}


def _parses(value: str, kind: str) -> None:
    if kind == "int64":
        int(value)
    elif kind == "float64":
        float(value)
    elif kind == "bool":
        assert value in {"true", "false"}, value


# --- the default trigger: KEDA's aws-sqs-queue scaler -----------------------------------------
def test_sqs_trigger_is_built_from_the_binding() -> None:
    spec = _spec(
        minReplicas=0,
        messagesPerReplica=10,
        activationMessages=2,
        pollingSeconds=15,
        cooldownSeconds=60,
        authenticationRef={"name": "sqs-reader"},
    )
    spec["queue"]["endpoint"] = "http://moto.aws.svc:5000"
    spec["queue"]["region"] = "eu-west-1"
    obj = _render(spec)
    _check_against_keda(obj)
    assert obj["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
        "minReplicaCount": 0,
        "maxReplicaCount": 4,
        "pollingInterval": 15,
        "cooldownPeriod": 60,
        "triggers": [
            {
                "type": "aws-sqs-queue",
                "name": "carrier-queue",
                "metricType": "AverageValue",
                "metadata": {
                    "queueURL": QUEUE_URL,
                    "awsRegion": "eu-west-1",
                    "queueLength": "10",
                    "activationQueueLength": "2",
                    "scaleOnInFlight": "true",
                    "awsEndpoint": "http://moto.aws.svc:5000",
                },
                "authenticationRef": {"name": "sqs-reader"},
            }
        ],
    }


def test_region_comes_from_an_aws_queue_url_and_in_flight_can_be_left_out() -> None:
    obj = _render(_spec(includeInFlight=False, podIdentity={"provider": "aws"}))
    _check_against_keda(obj)
    metadata = obj["spec"]["triggers"][0]["metadata"]
    assert metadata["awsRegion"] == "eu-west-1"
    assert metadata["scaleOnInFlight"] == "false"
    assert "awsEndpoint" not in metadata
    assert obj["spec"]["triggers"][0]["authenticationRef"] == {"name": "orders"}


def test_defaults_are_kedas_own() -> None:
    spec = obj_spec = _render(_spec(authenticationRef={"name": "a"}))["spec"]
    assert (spec["minReplicaCount"], spec["pollingInterval"], spec["cooldownPeriod"]) == (
        0,
        30,
        300,
    )
    metadata = obj_spec["triggers"][0]["metadata"]
    assert (metadata["queueLength"], metadata["activationQueueLength"]) == ("5", "0")


def test_owned_by_the_binding_as_its_controller() -> None:
    meta = _render(_spec(authenticationRef={"name": "a"}))["metadata"]
    assert meta["name"] == "orders"
    assert meta["namespace"] == "team-a"
    assert meta["labels"][BINDING_LABEL] == "orders"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": "orders",
            "uid": "uid-1",
            "controller": True,
        }
    ]


def test_pod_identity_goes_into_an_owned_trigger_authentication() -> None:
    scaling = Scaling.of(
        _spec(podIdentity={"provider": "aws", "identityOwner": "workload"})["autoscaling"]
    )
    auth = trigger_authentication(scaling, OWNER)
    assert auth is not None
    assert auth["kind"] == "TriggerAuthentication"
    assert auth["metadata"]["ownerReferences"][0]["controller"] is True
    identity = auth["spec"]["podIdentity"]
    assert set(identity) <= POD_IDENTITY_FIELDS
    for name, allowed in POD_IDENTITY_ENUMS.items():
        if name in identity:
            assert identity[name] in allowed
    assert (
        trigger_authentication(
            Scaling.of(_spec(authenticationRef={"name": "a"})["autoscaling"]), OWNER
        )
        is None
    )


# --- the option: KEDA's metrics-api scaler on the operator's endpoint -------------------------
def test_operator_source_points_metrics_api_at_the_depth_endpoint() -> None:
    obj = _render(_spec(source="operator", messagesPerReplica=20, activationMessages=1))
    _check_against_keda(obj)
    (trig,) = obj["spec"]["triggers"]
    assert trig["type"] == "metrics-api"
    assert "authenticationRef" not in trig  # KEDA needs no AWS identity
    assert trig["metadata"] == {
        "url": f"{BASE}/bindings/team-a/orders/queue",
        "format": "json",
        "valueLocation": "value",
        "targetValue": "20",
        "activationTargetValue": "1",
    }


def test_depth_document_shape_and_refusals() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    fresh = (now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = {
        "spec": {"autoscaling": {"includeInFlight": True}},
        "status": {
            "queueDepth": {"visible": 7, "inFlight": 3, "delayed": 1},
            "lastChecked": fresh,
        },
    }
    assert depth_document(entry, now, 60) == (
        200,
        {"visible": 7, "inFlight": 3, "delayed": 1, "value": 10, "checkedAt": fresh},
    )
    entry["spec"] = {"autoscaling": {"includeInFlight": False}}
    assert depth_document(entry, now, 60)[1]["value"] == 7
    assert depth_document(None, now, 60)[0] == 404
    assert depth_document({"spec": {}, "status": {}}, now, 60)[0] == 503  # not read yet
    code, body = depth_document(entry, now + timedelta(seconds=120), 60)
    assert code == 503
    assert "old" in body["error"]


def test_operator_source_reads_the_queue_as_often_as_keda_polls() -> None:
    assert check_interval(_spec(source="operator", pollingSeconds=10), 60.0) == 10.0
    assert check_interval(_spec(authenticationRef={"name": "a"}, pollingSeconds=10), 60.0) == 60.0
    assert check_interval({"queue": {"name": "q"}}, 60.0) == 60.0


# --- conflicts ----------------------------------------------------------------------------------
def test_foreign_scalers_are_found_and_our_own_are_not() -> None:
    scaling = Scaling.of(_spec(authenticationRef={"name": "a"})["autoscaling"])
    ours = _render(_spec(authenticationRef={"name": "a"}))
    theirs = {"metadata": {"name": "hand-made"}, "spec": {"scaleTargetRef": {"name": "worker"}}}
    keda_hpa = {
        "metadata": {"name": "keda-hpa-orders"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "worker"}},
    }
    other_hpa = {
        "metadata": {"name": "cpu"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "worker"}},
    }
    unrelated = {
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "worker"}},
    }
    assert foreign_scalers(scaling, OWNER, [ours], [keda_hpa, unrelated]) == []
    assert foreign_scalers(scaling, OWNER, [theirs], []) == ["ScaledObject hand-made"]
    assert foreign_scalers(scaling, OWNER, [], [other_hpa]) == ["HorizontalPodAutoscaler cpu"]
    squatter = {"metadata": {"name": "orders"}, "spec": {"scaleTargetRef": {"name": "other"}}}
    assert foreign_scalers(scaling, OWNER, [squatter], []) == [
        "ScaledObject orders (the name this binding's would take)"
    ]


# --- bad input: one line naming the field ----------------------------------------------------
@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"target": {"name": "w"}}, "spec.autoscaling.maxReplicas: required"),
        (
            {"maxReplicas": 3, "authenticationRef": {"name": "a"}},
            "spec.autoscaling.target: required",
        ),
        (
            {
                "target": {"name": "w", "kind": "Job"},
                "maxReplicas": 3,
                "authenticationRef": {"name": "a"},
            },
            "spec.autoscaling.target.kind: must be Deployment or StatefulSet",
        ),
        (
            {
                "target": {"name": "w"},
                "minReplicas": 5,
                "maxReplicas": 3,
                "authenticationRef": {"name": "a"},
            },
            "spec.autoscaling.minReplicas: 5 is above maxReplicas 3",
        ),
        (
            {"target": {"name": "w"}, "maxReplicas": 0, "authenticationRef": {"name": "a"}},
            "spec.autoscaling.maxReplicas: must be between 1 and 1000",
        ),
        (
            {
                "target": {"name": "w"},
                "maxReplicas": 3,
                "messagesPerReplica": "ten",
                "authenticationRef": {"name": "a"},
            },
            "spec.autoscaling.messagesPerReplica: must be a whole number",
        ),
        (
            {"target": {"name": "w"}, "maxReplicas": 3},
            "spec.autoscaling: source sqs needs exactly one of",
        ),
        (
            {
                "target": {"name": "w"},
                "maxReplicas": 3,
                "podIdentity": {"provider": "aws"},
                "authenticationRef": {"name": "a"},
            },
            "spec.autoscaling: source sqs needs exactly one of",
        ),
        (
            {
                "target": {"name": "w"},
                "maxReplicas": 3,
                "source": "operator",
                "authenticationRef": {"name": "a"},
            },
            "spec.autoscaling.authenticationRef: not used with source: operator",
        ),
        (
            {
                "target": {"name": "w"},
                "maxReplicas": 3,
                "podIdentity": {"provider": "azure-workload"},
            },
            "spec.autoscaling.podIdentity.provider: must be aws",
        ),
        (
            {
                "target": {"name": "w"},
                "maxReplicas": 3,
                "podIdentity": {
                    "provider": "aws",
                    "roleArn": "arn:aws:iam::1:role/r",
                    "identityOwner": "keda",
                },
            },
            "spec.autoscaling.podIdentity: set roleArn or identityOwner, not both",
        ),
        (
            {"target": {"name": "w"}, "maxReplicas": 3, "source": "kafka"},
            "spec.autoscaling.source: must be sqs or operator",
        ),
        (
            {"target": {"name": "w"}, "maxReplicas": 3, "source": "operator", "replicas": 2},
            "spec.autoscaling.replicas: unknown field",
        ),
    ],
)
def test_bad_autoscaling_is_refused_with_the_field(section: dict[str, Any], expected: str) -> None:
    spec = {"queue": {"url": QUEUE_URL}, "webhook": {"port": 8080}, "autoscaling": section}
    problems = binding_problems(spec, "team-a", allow_remote_webhooks=False)
    assert any(p.startswith(expected) for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_sqs_source_needs_a_region_the_operator_can_name() -> None:
    spec = {
        "queue": {"name": "orders", "endpoint": "http://moto:5000"},
        "webhook": {"port": 8080},
        "autoscaling": {
            "target": {"name": "w"},
            "maxReplicas": 3,
            "podIdentity": {"provider": "aws"},
        },
    }
    problems = binding_problems(spec, "team-a", allow_remote_webhooks=False)
    assert problems == [
        "spec.queue.region: KEDA's aws-sqs-queue scaler needs a region: set spec.queue.region "
        "(or use spec.autoscaling.source: operator)"
    ]
    spec["autoscaling"] = {"target": {"name": "w"}, "maxReplicas": 3, "source": "operator"}
    assert binding_problems(spec, "team-a", allow_remote_webhooks=False) == []


# --- the CRD says the same -------------------------------------------------------------------
def test_crd_schema_carries_the_names_bounds_and_rules() -> None:
    schema = crd.autoscaling_schema()
    props = schema["properties"]
    assert set(props) == autoscaling.FIELDS
    assert props["minReplicas"]["minimum"] == 0
    assert props["includeInFlight"]["default"] is True
    assert props["source"] == {**props["source"], "enum": ["sqs", "operator"], "default": "sqs"}
    assert props["target"]["properties"]["kind"]["enum"] == ["Deployment", "StatefulSet"]
    rules = " ".join(r["rule"] for r in schema["x-kubernetes-validations"])
    assert "self.minReplicas <= self.maxReplicas" in rules
    assert "has(self.podIdentity) != has(self.authenticationRef)" in rules
    spec = crd.build_crd()["spec"]["versions"][0]
    assert (
        spec["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["autoscaling"]
        == schema
    )
    wide = {c["name"]: c for c in spec["additionalPrinterColumns"] if c.get("priority") == 1}
    assert wide["ScaledObject"]["jsonPath"] == ".status.autoscaling.scaledObject"
    assert wide["Replicas"]["jsonPath"] == ".status.autoscaling.currentReplicas"
    assert wide["Desired"]["jsonPath"] == ".status.autoscaling.desiredReplicas"


def test_a_good_spec_passes_the_crd_schema_and_a_bad_one_does_not() -> None:
    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    jsonschema.Draft4Validator(schema).validate(_spec(podIdentity={"provider": "aws"}))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(
            _spec(minReplicas=-1, podIdentity={"provider": "aws"})
        )
