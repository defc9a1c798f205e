"""A CarrierBinding's spec, rendered into the sidecar's own :class:`Settings`.

There is no second list of variable names here: each setting declares its place in a binding
(``json_schema_extra["binding"]``), so a setting added to the sidecar is reachable from bindings
(and checked against the CRD schema by the tests) without touching this module. The only
hand-written rules are the two that span fields: a webhook or health check given as a port and
path on the pod's own loopback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from carrier_sidecar.settings import Settings, env_name, env_names, first_error, lower_first

from .schedules import ScheduleError, parse_schedules, task_routes

GROUP = "carrier.amplify.security"
VERSION = "v1alpha1"
PLURAL = "carrierbindings"
KIND = "CarrierBinding"
BINDING_LABEL = f"{GROUP}/binding"
LOOPBACK = "127.0.0.1"

# Spec keys that configure the pod rather than the sidecar's settings.
# (``rolloutOnChange``, ``queueCheck`` and ``autoscaling`` steer the operator itself: no sidecar
# setting either; ``schedules`` is the operator's too, and renders CARRIER_WEBHOOK_TASKS:
# ``RENDERERS``.)
POD_KEYS = frozenset(
    {
        "sidecar.image",
        "sidecar.resources",
        "sidecar.env",
        "rolloutOnChange",
        "queueCheck",
        "autoscaling",
        "schedules",
    }
)


class BindingError(ValueError):
    """A spec the sidecar would reject; ``str()`` names the spec field and what is wrong."""


def binding_paths() -> dict[str, str]:
    """Spec path (``delivery.batchSize``) → settings field (``sqs_batch_size``)."""
    paths: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("binding"), str):
            paths[str(extra["binding"])] = name
    return paths


def rendered_from(field: str) -> str | None:
    """The spec part a setting without a path of its own is rendered from (``schedules``)."""
    extra = Settings.model_fields[field].json_schema_extra
    source = extra.get("rendered_from") if isinstance(extra, dict) else None
    return str(source) if source is not None else None


def _field_paths() -> dict[str, str]:
    return {field: path for path, field in binding_paths().items()}


def value_at(obj: Mapping[str, Any], path: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``, or None where any step is missing or not a mapping."""
    node: Any = obj
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _loopback_url(port: Any, path: Any) -> str:
    text = str(path or "/")
    return f"http://{LOOPBACK}:{port}{text if text.startswith('/') else '/' + text}"


def _schedule_routes(spec: Mapping[str, Any]) -> str | None:
    try:
        return task_routes(parse_schedules(spec.get("schedules")))
    except ScheduleError as exc:
        raise BindingError(str(exc)) from None


# How a setting declared ``rendered_from`` a spec part is rendered from it (None: not set).
RENDERERS = {"schedules": _schedule_routes}


def settings_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The settings values a spec sets, by field name (unvalidated; the rendered-from parts,
    ``spec.schedules``, are checked on the way: :class:`BindingError` names the entry)."""
    values: dict[str, Any] = {}
    for path, field in binding_paths().items():
        value = value_at(spec, path)
        if value is not None:
            values[field] = value
    for field in Settings.model_fields:
        source = rendered_from(field)
        if source is not None:
            rendered = RENDERERS[source](spec)
            if rendered is not None:
                values[field] = rendered
    webhook_port = value_at(spec, "webhook.port")
    if webhook_port is not None and "webhook_endpoint" not in values:
        values["webhook_endpoint"] = _loopback_url(webhook_port, value_at(spec, "webhook.path"))
    health_path = value_at(spec, "healthCheck.path")
    if health_path is not None and "webhook_health_check_endpoint" not in values:
        port = value_at(spec, "healthCheck.port") or webhook_port
        if port is None:
            raise BindingError(
                "spec.healthCheck.path: needs spec.webhook.port or spec.healthCheck.port"
            )
        values["webhook_health_check_endpoint"] = _loopback_url(port, health_path)
    return values


def render_settings(spec: Mapping[str, Any]) -> Settings:
    """Validate a spec with the sidecar's own rules; raise :class:`BindingError` naming the field."""
    values = settings_fields(spec)
    try:
        return Settings.from_fields(values)
    except ValidationError as exc:
        raise BindingError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    field, message, _ = first_error(exc)
    if field is None:
        # Cross-field rules name variables; say which spec fields those are.
        # Longest names first: CARRIER_RETRY_BACKOFF is a prefix of CARRIER_RETRY_BACKOFF_BASE.
        for name, path in sorted(_field_paths().items(), key=lambda fp: -len(fp[0])):
            message = message.replace(env_name(name), f"spec.{path}")
        return message
    # webhook.url shares its field with the webhook.port/path shortcut: name the section.
    path = "webhook" if field == "webhook_endpoint" else _field_paths().get(field, field)
    return f"spec.{path}: {lower_first(message)}"


def render_env(spec: Mapping[str, Any]) -> dict[str, str]:
    """The sidecar's ``CARRIER_*`` env for a spec (only what the spec sets; defaults stay implicit)."""
    return render_settings(spec).to_env()


def settings_hash(env: Mapping[str, str]) -> str:
    """A short, stable digest of rendered env: what the injector records and rollout compares."""
    blob = json.dumps(dict(sorted(env.items())), separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# --- the sidecar's pod-level overrides (spec.sidecar.image/resources/env) ---------------------
# Extra ``CARRIER_*`` variables in ``spec.sidecar.env`` are refused: each setting has one place in
# the spec, where the schema, the operator and the probes all see it. Other names pass through.
ENV_PREFIX = "CARRIER_"


def check_sidecar_env(spec: Mapping[str, Any]) -> None:
    """Raise :class:`BindingError` for a ``CARRIER_*`` or duplicated name in ``spec.sidecar.env``."""
    known = {variable: field for field, variable in env_names()}
    paths = _field_paths()
    seen: set[str] = set()
    for index, item in enumerate(_env_items(spec)):
        where = f"spec.sidecar.env[{index}]"
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise BindingError(f"{where}: needs a name")
        if name in seen:
            raise BindingError(f"{where}: {name} is set twice")
        seen.add(name)
        if name.upper().startswith(ENV_PREFIX):
            field = known.get(name.upper())
            if field is None:
                raise BindingError(f"{where}: {name} is not a Carrier setting")
            source = rendered_from(field)
            if source is not None:
                raise BindingError(
                    f"{where}: {name} is a Carrier setting the operator renders from "
                    f"spec.{source}; it is not set by hand in a binding"
                )
            raise BindingError(
                f"{where}: {name} is a Carrier setting: set spec.{paths.get(field, field)} "
                "instead, so the operator validates it and the probes follow it"
            )


# The CRD's CEL rules that span fields, for clusters (and tests) where CEL did not run.
_EXCLUSIVE = (
    ("webhook", "port", "url", "set webhook.port (with path) or webhook.url, not both"),
    ("healthCheck", "path", "url", "set healthCheck.path (and port) or healthCheck.url, not both"),
)
_NEEDS = (
    ("webhook", "path", "port", "webhook.path needs webhook.port"),
    ("healthCheck", "port", "path", "healthCheck.port needs healthCheck.path"),
)


def check_field_rules(spec: Mapping[str, Any]) -> None:
    """The CRD's ``x-kubernetes-validations`` (queue name xor url is the settings' own rule)."""
    for section, one, other, message in _EXCLUSIVE:
        if (
            value_at(spec, f"{section}.{one}") is not None
            and value_at(spec, f"{section}.{other}") is not None
        ):
            raise BindingError(f"spec.{section}: {message}")
    for section, key, needed, message in _NEEDS:
        if (
            value_at(spec, f"{section}.{key}") is not None
            and value_at(spec, f"{section}.{needed}") is None
        ):
            raise BindingError(f"spec.{section}: {message}")


def validate_spec(spec: Mapping[str, Any]) -> Settings:
    """Everything the operator checks beyond the CRD schema; raise :class:`BindingError`."""
    check_field_rules(spec)
    settings = render_settings(spec)
    check_sidecar_env(spec)
    return settings


def passthrough_env(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``spec.sidecar.env`` entries for the container as given (non-``CARRIER_*`` names)."""
    return [
        dict(item)
        for item in _env_items(spec)
        if not str(item.get("name", "")).upper().startswith(ENV_PREFIX)
    ]


def sidecar_hash(spec: Mapping[str, Any]) -> str:
    """Digest of everything a binding puts into the sidecar container: env, extra env, image,
    resources. Rollout compares it, so an image bump restarts pods just like a setting change."""
    blob = {
        "env": render_env(spec),
        "extraEnv": passthrough_env(spec),
        "image": value_at(spec, "sidecar.image"),
        "resources": value_at(spec, "sidecar.resources"),
    }
    return hashlib.sha256(
        json.dumps(blob, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]


def _env_items(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = value_at(spec, "sidecar.env")
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise BindingError("spec.sidecar.env: must be a list of {name, value} objects")
    return list(items)
