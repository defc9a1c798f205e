"""The rules for CarrierBindings beyond the CRD schema, enforced at every gate.

Pure: a spec and its namespace in, a list of one-line problems out (empty = admit). The settings
are checked by the sidecar's own model (:func:`binding.render_settings`), so a binding the
validator admits is one the sidecar will start with. The validating webhook is not the only
gate: a binding stored before a rule was turned on (or with the validating webhook off) must not
slip through, so the injector (:func:`injection.plan_injection`) and the reconciler
(:func:`check_binding`: the binding's condition) apply the same rules with the same config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from carrier_sidecar.settings import Settings

from .autoscaling import autoscaling_problems
from .binding import BindingError, validate_spec
from .config import OperatorSettings

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+|[KMGTPE]i?|[mkMGTPE]|[un])?$")
_SERVICE_HOST = re.compile(r"^[a-z0-9-]+\.([a-z0-9-]+)\.svc(\.cluster\.local)?\.?$")


def binding_problems(
    spec: Mapping[str, Any], namespace: str, *, allow_remote_webhooks: bool
) -> list[str]:
    """Every rule the binding breaks, each as ``spec.field: what is wrong``."""
    problems: list[str] = []
    try:
        settings = validate_spec(spec)  # the sidecar's own model, plus spec.sidecar.env names
    except BindingError as exc:
        return [str(exc)]
    problems += _url_problems(settings, namespace, allow_remote_webhooks)
    problems += _http_addr_problems(spec, settings)
    problems += _sidecar_problems(spec.get("sidecar"))
    problems += autoscaling_problems(spec.get("autoscaling"), settings)
    return problems


def policy_problems(spec: Mapping[str, Any], namespace: str, config: OperatorSettings) -> list[str]:
    """:func:`binding_problems` under the operator's configuration (the one call every gate makes)."""
    return binding_problems(spec, namespace, allow_remote_webhooks=config.allow_remote_webhooks)


def check_binding(spec: Mapping[str, Any], namespace: str, config: OperatorSettings) -> Settings:
    """The binding's settings if every rule holds; else :class:`BindingError` naming them all."""
    problems = policy_problems(spec, namespace, config)
    if problems:
        raise BindingError("; ".join(problems))
    return validate_spec(spec)


def _url_problems(settings: Settings, namespace: str, allow_remote: bool) -> list[str]:
    problems: list[str] = []
    for path, url in (
        ("spec.webhook", settings.webhook_endpoint),
        ("spec.healthCheck", settings.webhook_health_check_endpoint),
    ):
        if url is None:
            continue
        host = (urlsplit(url).hostname or "").lower()
        if host in LOOPBACK_HOSTS:
            continue
        if not allow_remote:
            problems.append(
                f"{path}: {url!r} is not the pod's loopback; give spec.webhook.port/path "
                "(remote webhooks need CARRIER_OPERATOR_ALLOW_REMOTE_WEBHOOKS=true)"
            )
            continue
        found = _SERVICE_HOST.match(host)
        if found and found.group(1) != namespace:
            problems.append(
                f"{path}: {url!r} points at namespace {found.group(1)!r}; a binding may only "
                f"reference services in its own namespace {namespace!r}"
            )
    return problems


def _http_addr_problems(spec: Mapping[str, Any], settings: Settings) -> list[str]:
    bind = settings.http_bind
    if bind is None:
        return []
    host, port = bind
    problems: list[str] = []
    if host not in {"0.0.0.0", "::", ""}:
        problems.append(
            f"spec.sidecar.httpAddr: {settings.http_addr!r} listens on {host} only; the kubelet "
            "probes the pod IP, so use ':PORT'"
        )
    webhook_port = urlsplit(settings.webhook_endpoint).port
    if urlsplit(settings.webhook_endpoint).hostname in LOOPBACK_HOSTS and webhook_port == port:
        problems.append(
            f"spec.sidecar.httpAddr: port {port} is the worker's webhook port too; pick another"
        )
    return problems


def _sidecar_problems(sidecar: Any) -> list[str]:
    if sidecar is None:
        return []
    if not isinstance(sidecar, Mapping):
        return ["spec.sidecar: must be an object"]
    problems: list[str] = []
    image = sidecar.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        problems.append("spec.sidecar.image: must be a non-empty image reference")
    problems += _env_problems(sidecar.get("env"))
    problems += _resources_problems(sidecar.get("resources"))
    return problems


def _env_problems(env: Any) -> list[str]:
    """Shape of each entry; missing, duplicated and ``CARRIER_*`` names are ``validate_spec``'s."""
    if env is None:
        return []
    if not isinstance(env, list):
        return ["spec.sidecar.env: must be a list of {name, value} or {name, valueFrom}"]
    problems: list[str] = []
    for index, item in enumerate(env):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            continue
        where = f"spec.sidecar.env[{index}]"
        if not _ENV_NAME.fullmatch(name):
            problems.append(f"{where}: {name!r} is not a valid environment variable name")
        if "value" in item and "valueFrom" in item:
            problems.append(f"{where}: set value or valueFrom, not both")
        if "value" in item and not isinstance(item["value"], str):
            problems.append(f"{where}: the value of {name} must be a string")
    return problems


def _resources_problems(resources: Any) -> list[str]:
    if resources is None:
        return []
    if not isinstance(resources, Mapping):
        return ["spec.sidecar.resources: must be an object with requests and/or limits"]
    problems: list[str] = []
    for key, values in resources.items():
        if key not in {"requests", "limits"}:
            problems.append(f"spec.sidecar.resources.{key}: only requests and limits are allowed")
            continue
        if not isinstance(values, Mapping):
            problems.append(f"spec.sidecar.resources.{key}: must be an object")
            continue
        for resource, quantity in values.items():
            if not _QUANTITY.match(str(quantity)):
                problems.append(
                    f"spec.sidecar.resources.{key}.{resource}: {quantity!r} is not a quantity"
                )
    return problems
