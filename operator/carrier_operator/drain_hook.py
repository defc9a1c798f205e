"""The worker's ``preStop`` that drains the sidecar first, as pure functions over the pod spec.

Why: the kubelet signals the worker while the sidecar is still receiving (both at once for a
regular container; the worker first for a native sidecar), so every POST during the worker's
shutdown fails and burns a receive count. A container's preStop runs before its SIGTERM and the
kubelet waits for it, so a ``httpGet`` hook on the worker that calls the sidecar's ``/drain``
holds the worker's SIGTERM until the sidecar has stopped receiving and finished what was in
flight. The hook has no ``host``: the kubelet then calls the pod IP, where the sidecar's port
listens. The grace period counts from the start of the hook.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from carrier_sidecar.drain import DRAIN_PATH, TOKEN_HEADER
from carrier_sidecar.settings import Settings, env_name

TOKEN_ENV = env_name("drain_token")
DEFAULT_GRACE = 30  # the API server's default terminationGracePeriodSeconds
WORKER_SHUTDOWN_MARGIN = 5.0  # seconds left for the worker's own exit after the drain

JSONPatch = list[dict[str, Any]]


def new_token() -> str:
    """A fresh per-pod token (32 URL-safe characters), generated at admission."""
    return secrets.token_urlsafe(24)


def prestop_hook(port: int, token: str) -> dict[str, Any]:
    return {
        "httpGet": {
            "path": DRAIN_PATH,
            "port": port,
            "scheme": "HTTP",
            "httpHeaders": [{"name": TOKEN_HEADER, "value": token}],
        }
    }


def worker_indices(containers: Sequence[Mapping[str, Any]], settings: Settings) -> list[int]:
    """The containers the sidecar serves: those declaring the loopback webhook's port, else
    every regular container (a worker need not declare its ports)."""
    parts = urlsplit(settings.webhook_endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    declaring = [
        index
        for index, container in enumerate(containers)
        if any(
            isinstance(p, Mapping) and p.get("containerPort") == port
            for p in _list(container.get("ports"))
        )
    ]
    return declaring or list(range(len(containers)))


def hook_ops(
    containers: Sequence[Mapping[str, Any]], settings: Settings, token: str
) -> tuple[JSONPatch, list[str]]:
    """Add-only ops giving each worker the drain hook, and the warnings for those we cannot."""
    bind = settings.http_bind
    if bind is None:
        return [], [
            "spec.sidecar.httpAddr is none: the sidecar has no drain endpoint, so the worker "
            "is signalled while the sidecar still delivers to it (failed POSTs during shutdown)"
        ]
    port = bind[1]
    ops: JSONPatch = []
    warnings: list[str] = []
    for index in worker_indices(containers, settings):
        container = containers[index]
        path = f"/spec/containers/{index}"
        lifecycle = container.get("lifecycle")
        if isinstance(lifecycle, Mapping) and lifecycle.get("preStop") is not None:
            ops += _token_env_ops(path, container, token)
            warnings.append(_own_hook_warning(str(container.get("name")), port))
        elif isinstance(lifecycle, Mapping):
            ops.append(
                {
                    "op": "add",
                    "path": f"{path}/lifecycle/preStop",
                    "value": prestop_hook(port, token),
                }
            )
        else:
            ops.append(
                {
                    "op": "add",
                    "path": f"{path}/lifecycle",
                    "value": {"preStop": prestop_hook(port, token)},
                }
            )
    return ops, warnings


def grace_warnings(pod_spec: Mapping[str, Any], shutdown_timeout: float) -> list[str]:
    """The grace period must cover the drain and then the worker's own shutdown."""
    grace = pod_spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
    if not isinstance(grace, int) or isinstance(grace, bool):
        return []
    needed = shutdown_timeout + WORKER_SHUTDOWN_MARGIN
    if grace >= needed:
        return []
    return [
        f"terminationGracePeriodSeconds {grace} cannot cover the sidecar's drain "
        f"(spec.delivery.shutdownTimeout {shutdown_timeout:g}s) plus {WORKER_SHUTDOWN_MARGIN:g}s "
        f"for the worker's own shutdown: set it to at least {needed:g} or lower the shutdown "
        "timeout, else in-flight messages may be cut off and redelivered"
    ]


def _own_hook_warning(name: str, port: int) -> str:
    return (
        f"container {name!r} already has a preStop hook, kept unchanged: the sidecar is not "
        f"drained before {name!r} stops. Call the drain endpoint first from that hook, e.g. "
        f'curl -fsS -H "{TOKEN_HEADER}: ${TOKEN_ENV}" http://127.0.0.1:{port}{DRAIN_PATH} '
        f"(the token is in {name!r}'s env as {TOKEN_ENV})"
    )


def _token_env_ops(path: str, container: Mapping[str, Any], token: str) -> JSONPatch:
    env = container.get("env")
    item = {"name": TOKEN_ENV, "value": token}
    if not isinstance(env, list):
        return [{"op": "add", "path": f"{path}/env", "value": [item]}]
    if any(isinstance(e, Mapping) and e.get("name") == TOKEN_ENV for e in env):
        return []
    return [{"op": "add", "path": f"{path}/env/-", "value": item}]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
