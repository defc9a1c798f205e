"""kopf handlers for CarrierBindings: validate, render, record status, announce, roll out.

Idempotent by construction: the status is rendered from what was observed (a second run writes
the same status, which the book skips), events are posted only when the rendered sidecar
changes, and the rollout skips workloads already on the new hash.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from . import admission, events
from .binding import (
    GROUP,
    PLURAL,
    VERSION,
    BindingError,
    render_env,
    settings_hash,
    sidecar_hash,
    validate_spec,
)
from .book import Book
from .checker import Checker
from .config import OperatorSettings
from .kubeapi import KubeAPI, KubeAPIError
from .queues import QueueReader
from .rollout import roll_out
from .status import now_iso

logger = logging.getLogger(__name__)

BINDINGS_INDEX = admission.INDEX  # the injector's index of binding specs and statuses
ROLLOUT_RETRY_DELAY = 30.0


@dataclass
class Runtime:
    """What the handlers share for one operator run (kept in kopf's memo)."""

    config: OperatorSettings
    api: KubeAPI
    book: Book
    reader: QueueReader
    checker: Checker

    async def close(self) -> None:
        await self.checker.stop()
        await self.reader.close()
        await self.api.close()


def runtime(memo: Any) -> Runtime:
    found = getattr(memo, "carrier", None)
    if not isinstance(found, Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return found


def _display(spec: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The queue and webhook as the printer columns show them (even for an invalid spec)."""
    queue = spec.get("queue") or {}
    webhook = spec.get("webhook") or {}
    queue_label = queue.get("name") or queue.get("url")
    if webhook.get("url"):
        target = str(webhook["url"])
    elif webhook.get("port") is not None:
        target = f":{webhook['port']}{webhook.get('path') or '/'}"
    else:
        target = None
    return (str(queue_label) if queue_label else None), target


# --- the binding itself ------------------------------------------------------------------------
@kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile")
@kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile")
@kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile")
async def reconcile(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    namespace: str | None,
    name: str,
    body: Any,
    memo: Any,
    **_: Any,
) -> None:
    carrier = runtime(memo)
    namespace = str(namespace)
    key = (namespace, name)
    obs = carrier.book.observed(key, status)
    generation = meta.get("generation")
    obs.generation = int(generation) if generation is not None else None
    obs.queue_label, obs.webhook = _display(spec)
    obs.pods = carrier.checker.bound_pods(key)
    try:
        validate_spec(spec)
    except BindingError as exc:
        message = str(exc)
        if obs.spec_error != message:
            events.warning(body, events.INVALID_SPEC, message)
        obs.spec_error, obs.probe = message, None
        await carrier.book.try_publish(key)
        raise kopf.PermanentError(message) from None

    env = render_env(spec)
    new_hash = sidecar_hash(spec)
    old_hash = obs.sidecar_hash
    if old_hash is not None and old_hash != new_hash and spec.get("rolloutOnChange"):
        await _roll_out(carrier, body, namespace, name, new_hash)
    if obs.spec_error is not None:
        events.normal(body, events.SPEC_VALID, "the spec is valid again")
    if old_hash != new_hash:
        events.normal(
            body,
            events.SETTINGS_RENDERED,
            f"sidecar settings {settings_hash(env)} ({len(env)} variables), sidecar {new_hash}",
        )
    obs.spec_error = None
    obs.settings_hash = settings_hash(env)
    obs.sidecar_hash = new_hash
    obs.env_count = len(env)
    await carrier.book.try_publish(key)
    carrier.checker.touch(key, queue=True)


async def _roll_out(carrier: Runtime, body: Any, namespace: str, name: str, new_hash: str) -> None:
    try:
        done = await roll_out(carrier.api, namespace, name, new_hash, now_iso())
    except KubeAPIError as exc:
        message = f"cannot restart the workloads using this binding: {exc}"
        events.warning(body, events.ROLLOUT_FAILED, message)
        raise kopf.TemporaryError(message, delay=ROLLOUT_RETRY_DELAY) from exc
    if done.restarted:
        events.normal(
            body, events.ROLLOUT, f"restarted {', '.join(done.restarted)} for sidecar {new_hash}"
        )
    logger.info(
        "rollout of %s/%s to %s: restarted %s, already current %s",
        namespace,
        name,
        new_hash,
        done.restarted,
        done.current,
    )
