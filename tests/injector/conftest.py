"""Shared helpers for the injector tests: applying a returned patch and schema-checking the pod."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import jsonpatch
import kubernetes_validate

KUBERNETES_VERSION = "1.33.0"


def patched(pod: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Apply a returned JSONPatch with an independent RFC 6902 implementation (``jsonpatch``)."""
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(dict(pod)), list(ops))
    return result


def assert_valid_pod(pod: Mapping[str, Any], namespace: str = "team-a") -> None:
    """Strict validation against the official Pod schema (unknown fields are errors)."""
    body = copy.deepcopy(dict(pod))
    body.setdefault("apiVersion", "v1")
    body.setdefault("kind", "Pod")
    body["metadata"].setdefault("namespace", namespace)
    try:
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        cause = exc.__context__
        where = "/".join(str(p) for p in getattr(cause, "absolute_path", []))
        message = getattr(cause, "message", str(exc).splitlines()[0])
        raise AssertionError(f"not a valid Pod at /{where}: {message}") from None


def containers(pod: Mapping[str, Any], key: str = "containers") -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod["spec"].get(key) or []}


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}
