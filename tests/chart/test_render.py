"""The chart lints, renders and validates under Helm 3 and Helm 4, with each option on."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from .helm import CHART, NAMESPACE, ROOT, SCENARIOS, find, one, render, require_helm, run_helm

# Kubernetes versions the chart supports at both ends (Chart.yaml kubeVersion >= 1.27).
K8S_VERSIONS = ("1.27.0", "1.33.0")
# Kinds with no schema in kubernetes-validate: each gets a structural check below instead.
CUSTOM_KINDS = {
    "Certificate",
    "Issuer",
    "PodMonitor",
    "ServiceMonitor",
    "PrometheusRule",
    "ClusterKopfPeering",
    "KopfPeering",
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_is_clean(helm: str, scenario: str) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART), values=SCENARIOS[scenario])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_manifest_passes_strict_validation(helm: str, scenario: str) -> None:
    manifests = render(helm, SCENARIOS[scenario])
    assert find(manifests, "Deployment")
    assert find(manifests, "MutatingWebhookConfiguration")
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            _check_custom(manifest)
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                name = f"{manifest['kind']}/{manifest['metadata']['name']}"
                pytest.fail(f"{name} invalid for {version}: {exc.message} at {list(exc.path)}")


def test_the_validator_rejects_a_stray_field() -> None:
    """Guards the test above: strict validation does catch an unknown field."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"prots": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def _check_custom(manifest: dict[str, Any]) -> None:
    kind, spec = manifest["kind"], manifest.get("spec", {})
    if kind == "Certificate":
        assert manifest["apiVersion"] == "cert-manager.io/v1"
        assert spec["secretName"]
        assert spec["issuerRef"]["name"]
        assert spec.get("dnsNames") or (spec.get("isCA") and spec["commonName"])
    elif kind == "Issuer":
        assert manifest["apiVersion"] == "cert-manager.io/v1"
        assert spec == {"selfSigned": {}} or spec["ca"]["secretName"]
    elif kind == "PodMonitor":
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["selector"]
        assert spec["podMetricsEndpoints"][0]["port"]
    elif kind == "ServiceMonitor":  # tests/chart/test_observability.py checks it in full
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["endpoints"][0]["port"] == "http-metrics"
    elif kind == "PrometheusRule":  # promtool checks it: tests/chart/test_observability.py
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["groups"][0]["rules"]
    else:
        assert manifest["apiVersion"] == "kopf.dev/v1"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"replicaCount": "two"}, "replicaCount"),
        ({"webhook": {"failurePolicy": "Maybe"}}, "failurePolicy"),
        ({"webhook": {"timeoutSeconds": 60}}, "timeoutSeconds"),
        ({"sidecar": {"nativeSidecar": "sometimes"}}, "nativeSidecar"),
        ({"sidecar": {"onMissingBinding": "shrug"}}, "onMissingBinding"),
        ({"operator": {"namespaces": "team-a"}}, "namespaces"),
        ({"operator": {"namespaces": ["Team_A"]}}, "namespaces"),
        ({"certManager": {"enabled": "yes"}}, "enabled"),
        ({"webhok": {"port": 8443}}, "webhok"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_values_fail_with_the_field_named(
    helm: str, values: dict[str, Any], field: str
) -> None:
    done = run_helm(helm, "template", "carrier", str(CHART), values=values)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert field in done.stderr, done.stderr


def test_helm3_and_helm4_render_the_same_manifests() -> None:
    helms = [require_helm(3), require_helm(4)]
    for values in SCENARIOS.values():
        first, second = (sorted(render(h, values), key=_identity) for h in helms)
        assert first == second


def _identity(manifest: dict[str, Any]) -> tuple[str, str, str]:
    meta = manifest["metadata"]
    return (manifest["kind"], meta.get("namespace", ""), meta["name"])


def test_chart_crd_is_the_top_level_crd() -> None:
    top = ROOT / "crds" / "carrierbinding.yaml"
    if not top.exists():
        pytest.skip("crds/carrierbinding.yaml not written yet (operator work)")
    copy = CHART / "crds" / "carrierbinding.yaml"
    assert copy.exists(), "copy it: cp crds/carrierbinding.yaml charts/carrier/crds/"
    assert copy.read_bytes() == top.read_bytes(), (
        "charts/carrier/crds/carrierbinding.yaml differs from crds/carrierbinding.yaml: "
        "cp crds/carrierbinding.yaml charts/carrier/crds/"
    )


def test_rendered_crds_are_the_binding_only(helm: str) -> None:
    crds = {
        m["metadata"]["name"] for m in render(helm, {}) if m["kind"] == "CustomResourceDefinition"
    }
    assert not {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} & crds, "no peering"
    if (CHART / "crds" / "carrierbinding.yaml").exists():
        assert "carrierbindings.carrier.amplify.security" in crds


def _undocumented(text: str) -> list[str]:
    """Keys with no comment above them nor above an enclosing block."""
    undocumented = []
    ancestors: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("-"):
            continue
        if stripped.startswith("#"):
            previous = stripped
            continue
        indent = len(line) - len(line.lstrip())
        while ancestors and ancestors[-1][0] >= indent:
            ancestors.pop()
        documented = previous.startswith("#") or any(doc for _, doc in ancestors)
        key, _, value = stripped.partition(":")
        if value.strip():
            if not documented:
                undocumented.append(key)
        else:
            ancestors.append((indent, documented))
        previous = stripped
    return undocumented


def test_values_yaml_documents_every_field() -> None:
    assert _undocumented((CHART / "values.yaml").read_text()) == []


def test_the_documentation_check_finds_a_bare_field() -> None:
    text = "# -- A.\na: 1\nblock:\n  # -- B.\n  b: 2\n  c: 3\n# -- D.\nd:\n  e: 4\n"
    assert _undocumented(text) == ["c"]


def test_schema_covers_every_value() -> None:
    """values.schema.json forbids unknown keys, so every key of values.yaml must be declared."""
    import json

    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(values, schema)
    assert schema["additionalProperties"] is False


def test_deployment_env_is_a_valid_operator_configuration(helm: str) -> None:
    """The env the chart gives the operator loads in OperatorSettings and names the real objects."""
    from carrier_operator.config import OperatorSettings

    for values in SCENARIOS.values():
        manifests = render(helm, values)
        container = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        env = {
            e["name"]: e["value"]
            for e in container["env"]
            if e["name"].startswith("CARRIER_OPERATOR_")
        }
        known = {f"CARRIER_OPERATOR_{f.upper()}" for f in OperatorSettings.model_fields}
        unknown = set(env) - known - _PENDING
        assert not unknown, f"env the operator does not read: {sorted(unknown)}"
        fields = {
            k.removeprefix("CARRIER_OPERATOR_").lower(): v for k, v in env.items() if k in known
        }
        config = OperatorSettings(**fields)
        service = one(manifests, "Service")
        assert config.service_name == service["metadata"]["name"]
        assert config.service_namespace == NAMESPACE
        assert config.webhook_port == container["ports"][0]["containerPort"]
        mutating = one(manifests, "MutatingWebhookConfiguration")
        assert config.mutating_webhook_configuration == mutating["metadata"]["name"]
        hook = mutating["webhooks"][0]["clientConfig"]["service"]
        assert (hook["name"], hook["namespace"]) == (config.service_name, NAMESPACE)
        assert hook["path"] == "/mutate-pods"
        if config.cert_dir:
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert config.cert_dir in mounts
        # The operator knows whether the validator exists: it never looks for one not rendered.
        validators = find(manifests, "ValidatingWebhookConfiguration")
        assert config.validate_bindings is bool(validators)
        if validators:
            assert config.validating_webhook_configuration == validators[0]["metadata"]["name"]


# Env the chart sets ahead of the operator reading it (see docs/packaging.md): none now.
_PENDING: set[str] = set()


def test_notes_tell_the_next_step_with_a_valid_binding() -> None:
    """NOTES.txt (rendered by Helm 4's offline dry run) shows a binding the CRD and operator accept."""
    import jsonschema

    from carrier_operator.binding import BINDING_LABEL, render_settings

    done = run_helm(
        require_helm(4), "install", "carrier", str(CHART), "-n", NAMESPACE, "--dry-run=client"
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert BINDING_LABEL in notes
    example = notes.split("<<'YAML'", 1)[1].split("YAML", 1)[0]
    binding = yaml.safe_load("\n".join(line.removeprefix("   ") for line in example.splitlines()))
    render_settings(binding["spec"])  # raises BindingError naming the field if invalid
    crd = CHART / "crds" / "carrierbinding.yaml"
    if crd.exists():
        schema = yaml.safe_load(crd.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        jsonschema.Draft4Validator(schema).validate(binding)  # OpenAPI v3 = draft 4 bounds
