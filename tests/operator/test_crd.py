"""The CRD is generated from the settings model, is structural, and judges the examples right."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import jsonschema
import pytest
import yaml

from carrier_operator import crd
from carrier_operator.binding import POD_KEYS, BindingError, binding_paths, validate_spec
from carrier_sidecar.durations import parse_duration
from carrier_sidecar.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "carrierbinding.yaml"
EXAMPLES = ROOT / "examples" / "bindings"
SHORTHANDS = {"webhook.port", "webhook.path", "healthCheck.port", "healthCheck.path"}


def load_crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return loaded


def root_schema() -> dict[str, Any]:
    version = load_crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def spec_property(path: str) -> dict[str, Any]:
    node = root_schema()["properties"]["spec"]
    for key in path.split("."):
        node = node["properties"][key]
    return dict(node)


# --- one source of truth ---------------------------------------------------------------------
def test_file_is_the_generators_output() -> None:
    assert CRD_FILE.read_text() == crd.render_yaml(), (
        "crds/carrierbinding.yaml is stale: python -m carrier_operator.crd > crds/carrierbinding.yaml"
    )


def _leaves(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        if path in POD_KEYS or "properties" not in child:
            yield path
        else:
            yield from _leaves(child, f"{path}.")


def test_spec_leaves_are_exactly_the_binding_paths() -> None:
    expected = set(binding_paths()) | set(POD_KEYS) | SHORTHANDS
    assert set(_leaves(root_schema()["properties"]["spec"])) == expected


@pytest.mark.parametrize("field", sorted(binding_paths().values()))
def test_defaults_bounds_and_enums_equal_the_settings_model(field: str) -> None:
    info = Settings.model_fields[field]
    path = next(p for p, f in binding_paths().items() if f == field)
    prop = spec_property(path)
    # default
    if info.default is None or path in crd.NO_SCHEMA_DEFAULT:
        assert "default" not in prop
    elif crd.is_duration(field):
        assert prop["x-kubernetes-int-or-string"] is True
        assert parse_duration(prop["default"]) == info.default
    else:
        assert prop["default"] == info.default
    # bounds
    limits = prop
    for item in info.metadata:
        for attr, key in (("ge", "minimum"), ("gt", "minimum"), ("le", "maximum")):
            value = getattr(item, attr, None)
            if value is not None:
                assert limits[key] == value, f"{path}: {key}"
                assert limits.get("exclusiveMinimum", False) is (attr == "gt") or key == "maximum"
    bounded = any(
        getattr(m, a, None) is not None for m in info.metadata for a in ("ge", "gt", "le")
    )
    assert bounded == ("minimum" in limits or "maximum" in limits), path
    # enum
    annotation = info.annotation
    if get_origin(annotation) is Literal:
        assert prop["enum"] == list(get_args(annotation))
    else:
        assert "enum" not in prop
    # the variable it sets is named in the description
    assert f"CARRIER_{field.upper()}" in prop["description"]


# --- structural schema -----------------------------------------------------------------------
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
_FORBIDDEN_IN_JUNCTORS = {"description", "default", "nullable", "additionalProperties"}


def structural_problems(node: dict[str, Any], where: str = "") -> list[str]:
    """The rules of https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/
    custom-resource-definitions/#specifying-a-structural-schema that can be checked offline."""
    problems: list[str] = []
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if int_or_string:
        if "type" in node:
            problems.append(f"{where}: int-or-string must not set type")
        for branch in node.get("anyOf", []):
            if branch not in ({"type": "integer"}, {"type": "string"}):
                problems.append(f"{where}: int-or-string anyOf may only be type integer|string")
    elif not node.get("type") and not preserve:
        problems.append(f"{where}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{where}: properties and additionalProperties together")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{where}: array without items")
    for junctor in _JUNCTORS:
        branches = node.get(junctor, [])
        for branch in branches if isinstance(branches, list) else [branches]:
            bad = _FORBIDDEN_IN_JUNCTORS & set(branch)
            if bad:
                problems.append(f"{where}.{junctor}: {sorted(bad)} not allowed in junctors")
            if "type" in branch and not int_or_string:
                problems.append(f"{where}.{junctor}: type only for int-or-string")
            if "properties" in branch:
                problems.append(f"{where}.{junctor}: properties not allowed in junctors")
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        item = node.get("items", {})
        for key in keys:
            if key not in item.get("required", []) and "default" not in item.get(
                "properties", {}
            ).get(key, {}):
                problems.append(f"{where}: list-map key {key} must be required or defaulted")
    for key, child in node.get("properties", {}).items():
        problems += structural_problems(child, f"{where}.{key}")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{where}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{where}{{}}")
    if "default" in node:
        try:
            jsonschema.validate(node["default"], _for_jsonschema(node))
        except jsonschema.ValidationError as exc:
            problems.append(f"{where}: default does not validate: {exc.message}")
    return problems


def test_crd_is_a_structural_v1_schema() -> None:
    doc = load_crd()
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
    assert doc["kind"] == "CustomResourceDefinition"
    spec = doc["spec"]
    assert doc["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["cb"]
    (version,) = spec["versions"]
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"][:8]] == [
        "Queue",
        "Webhook",
        "Valid",
        "Ready",
        "Pods",
        "Depth",
        "DLQ",
        "Age",
    ]
    root = version["schema"]["openAPIV3Schema"]
    assert root["type"] == "object"
    assert structural_problems(root) == []


def test_structural_checker_catches_what_it_claims() -> None:
    """The checker is a test too: it must fail on schemas that are not structural."""
    assert structural_problems({"properties": {"a": {"type": "string"}}})  # no type at root
    assert structural_problems(
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {}}
    )
    assert structural_problems({"type": "object", "anyOf": [{"description": "x"}]})
    assert structural_problems({"type": "integer", "default": "seven"})
    assert not structural_problems(
        {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    )


def test_kubernetes_validate_accepts_the_crd() -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "-k",
            "1.33.0",
            str(CRD_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout


# --- examples --------------------------------------------------------------------------------
def _for_jsonschema(node: Any) -> Any:
    """OpenAPI → JSON Schema: jsonschema knows neither int-or-string nor the x- extensions."""
    if isinstance(node, list):
        return [_for_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _for_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.get("exclusiveMinimum") is True:  # draft-4 boolean → draft 2020 number
        out["exclusiveMinimum"] = out.pop("minimum")
    if out.get("exclusiveMaximum") is True:
        out["exclusiveMaximum"] = out.pop("maximum")
    return out


def validator() -> jsonschema.protocols.Validator:
    schema = _for_jsonschema(copy.deepcopy(root_schema()))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def _examples(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.yaml"))
    assert found, f"no examples in {folder}"
    return found


@pytest.mark.parametrize("path", _examples(EXAMPLES), ids=lambda p: p.name)
def test_valid_examples_pass_schema_and_operator(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    errors = [e.message for e in validator().iter_errors(doc)]
    assert errors == []
    validate_spec(doc["spec"])  # the CEL rules' equivalent and the settings model


def _expectation(path: Path) -> tuple[str, str]:
    text = path.read_text()
    expect = re.search(r"^# expect: (\w+)$", text, re.M)
    error = re.search(r"^# error: (.+)$", text, re.M)
    assert expect, f"{path.name} must say '# expect: schema|cel|operator'"
    assert error, f"{path.name} must say '# error: <part of the message>'"
    return expect.group(1), error.group(1)


@pytest.mark.parametrize("path", _examples(EXAMPLES / "invalid"), ids=lambda p: p.name)
def test_invalid_examples_are_rejected_where_they_say(path: Path) -> None:
    kind, error = _expectation(path)
    doc = yaml.safe_load(path.read_text())
    messages = [e.message for e in validator().iter_errors(doc)]
    if kind == "schema":
        assert any(error in m for m in messages), messages
        return
    assert messages == [], "expected to pass the OpenAPI schema, fail later"
    with pytest.raises(BindingError) as caught:
        validate_spec(doc["spec"])
    assert error in str(caught.value)
    if kind == "cel":  # the operator's check mirrors a CEL rule the API server runs
        section = str(caught.value).split(":")[0].removeprefix("spec.").split(".")[0]
        assert spec_property(section).get("x-kubernetes-validations"), section
