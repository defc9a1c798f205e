"""kopf's webhook server, hardened: our cert, in-place rotation, and a review for every request.

kopf's stock server answers malformed input with 500s or tracebacks (non-JSON, a list, missing
keys) and needs ``kopf[dev]`` to make a cert (broken on OpenSSL 3). This subclass keeps kopf's
admission machinery (handlers, patches, warnings) and replaces only the HTTP edge: the envelope
is checked before kopf sees it, every answer is an ``AdmissionReview``, and a renewed cert is
loaded into the live TLS context so rotation never drops the listener.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp.web
import kopf
from yarl import URL

from carrier_sidecar.listen import describe, listen_sockets

from .cert_source import CertSource
from .kubeapi import KubeAPIError
from .pki import CertMaterial, load_into, server_context

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024  # etcd's object limit is 1.5 MiB; a review carries up to two
MAX_DEPTH = 100
API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
ReviewHook = Callable[[str, str, float], None]  # (webhook id or "unknown", result, seconds)


class ReviewError(ValueError):
    """The body is not an AdmissionReview request we can answer; ``str()`` says why."""


def _depth_ok(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def parse_review(raw: bytes, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Decode and check an AdmissionReview request against the resource this path reviews:
    the envelope, then the request's target, then its objects, then their namespace."""
    review = _envelope(raw)
    request: dict[str, Any] = review["request"]
    _check_target(request, expected)
    for key in ("object", "oldObject"):
        _check_object(request, key)
    _settle_namespace(request)
    return review


def _envelope(raw: bytes) -> dict[str, Any]:
    """JSON, an AdmissionReview of a known version, a request with a uid, bounded depth."""
    try:
        review = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ReviewError(f"the body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(review, dict):
        raise ReviewError("the body is not a JSON object")
    if review.get("apiVersion") not in API_VERSIONS:
        raise ReviewError(f"apiVersion must be one of {', '.join(API_VERSIONS)}")
    if review.get("kind") != "AdmissionReview":
        raise ReviewError("kind must be AdmissionReview")
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("request is missing")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > 256:
        raise ReviewError("request.uid must be a non-empty string")
    if not _depth_ok(request):
        raise ReviewError(f"request is nested deeper than {MAX_DEPTH} levels")
    return review


def _check_target(request: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """The resource this endpoint reviews, no sub-resource, a known operation, a user."""
    resource = request.get("resource")
    if not isinstance(resource, dict) or not all(
        isinstance(resource.get(k), str) for k in ("group", "version", "resource")
    ):
        raise ReviewError("request.resource must have string group, version and resource")
    if {k: resource[k] for k in ("group", "version", "resource")} != dict(expected):
        raise ReviewError(
            f"this endpoint reviews {expected['resource']} "
            f"({expected['group'] or 'core'}/{expected['version']}), not {resource['resource']}"
        )
    if request.get("subResource") not in (None, ""):
        raise ReviewError("sub-resources are not reviewed here")
    if request.get("operation") not in OPERATIONS:
        raise ReviewError(f"request.operation must be one of {', '.join(OPERATIONS)}")
    if not isinstance(request.get("userInfo"), dict):
        raise ReviewError("request.userInfo is missing")
    if not isinstance(request.get("object"), dict) and not isinstance(
        request.get("oldObject"), dict
    ):
        raise ReviewError("request.object (or oldObject) must be an object")


def _check_object(request: Mapping[str, Any], key: str) -> None:
    """``request.<key>``, if present: an object whose metadata has the types kopf relies on
    (a null label or annotation map means absent, as the API server treats it)."""
    value = request.get(key)
    if value is None:
        return
    if not isinstance(value, dict):
        raise ReviewError(f"request.{key} must be an object")
    meta = value.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise ReviewError(f"request.{key}.metadata must be an object")
    for field in ("name", "namespace", "uid", "generateName", "resourceVersion"):
        if meta.get(field) is not None and not isinstance(meta[field], str):
            raise ReviewError(f"request.{key}.metadata.{field} must be a string")
    for field in ("labels", "annotations"):
        if field in meta and meta[field] is None:
            del meta[field]  # null means absent (kopf's filters expect a mapping)
        pairs = meta.get(field)
        if pairs is not None and not (
            isinstance(pairs, dict) and all(isinstance(v, str) for v in pairs.values())
        ):
            raise ReviewError(f"request.{key}.metadata.{field} must map strings to strings")


def _settle_namespace(request: Mapping[str, Any]) -> None:
    """``request.namespace`` agrees with each object's, and fills it where the object has none:
    pods created by a ReplicaSet arrive with generateName and no namespace, and the handlers
    read it from the object, as for every other pod."""
    namespace = request.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ReviewError("request.namespace must be a string")
    for key in ("object", "oldObject"):
        value = request.get(key)
        if not isinstance(value, dict):
            continue
        meta = value.get("metadata")
        if meta is None:
            meta = value["metadata"] = {}
        own = meta.get("namespace")
        if namespace and own not in (None, "", namespace):
            raise ReviewError(
                f"request.{key}.metadata.namespace {own!r} differs from request.namespace"
            )
        if namespace and not own:
            meta["namespace"] = namespace


def review_response(review: Any, *, allowed: bool, code: int, message: str) -> dict[str, Any]:
    request = review.get("request") if isinstance(review, dict) else None
    uid = request.get("uid") if isinstance(request, dict) else None
    api_version = review.get("apiVersion") if isinstance(review, dict) else None
    return {
        "apiVersion": api_version if api_version in API_VERSIONS else API_VERSIONS[0],
        "kind": "AdmissionReview",
        "response": {
            "uid": uid if isinstance(uid, str) else "",
            "allowed": allowed,
            "status": {"code": code, "message": message},
        },
    }


def _uid_only(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


class InjectorServer(kopf.WebhookServer):
    """HTTPS for kopf's admission handlers at ``/<handler id>``, with our own certificates."""

    def __init__(
        self,
        *,
        source: CertSource,
        endpoints: Mapping[str, Mapping[str, Any]],
        addr: str | None,
        port: int,
        host: str,
        on_start: Any = None,
    ) -> None:
        super().__init__(addr=addr, port=port, host=host)
        self.source = source
        self.endpoints = {k: dict(v) for k, v in endpoints.items()}
        self.on_start = on_start
        self.material: CertMaterial | None = None
        self.internal_errors = 0
        self.served = 0
        # Seconds from request to response inside this process (the latest 10 000): what the
        # benchmark reports next to end-to-end latency, to tell our work from queueing.
        self.service_times: collections.deque[float] = collections.deque(maxlen=10_000)
        self.listening = asyncio.Event()
        self._wake = asyncio.Event()
        # Told of every answered request: allowed, denied, invalid (not a review) or error.
        self.on_review: ReviewHook | None = None

    def check_certificate_now(self) -> None:
        """Re-check the cert source now (all of it) instead of at the next scheduled time."""
        self.source.recheck()
        self._wake.set()

    async def _initial_material(self) -> CertMaterial:
        delay = 1.0
        while True:
            try:
                return await self.source.initial()
            except (KubeAPIError, OSError, ValueError) as exc:
                logger.error(
                    "no webhook certificate yet: retrying",
                    extra={"retry_in": round(delay), "error": str(exc)},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _client_config(self, material: CertMaterial) -> kopf.WebhookClientConfig:
        # yarl brackets an IPv6 host and drops the default port, as a client config wants.
        url = str(URL.build(scheme="https", host=self.host or "localhost", port=self.port or 443))
        return {"url": url, "caBundle": base64.b64encode(material.ca_bundle).decode("ascii")}

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        if self.on_start is not None:
            await self.on_start()
        material = await self._initial_material()
        self.material = material
        context = server_context(material)

        async def handle(request: aiohttp.web.Request) -> aiohttp.web.Response:
            started = time.perf_counter()
            result = "error"
            try:
                response, result = await self._handle(fn, request)
                return response
            except Exception:  # a bug here must still produce a review, and be counted
                self.internal_errors += 1
                logger.exception("admission request failed before review")
                body = review_response(None, allowed=False, code=400, message="bad request")
                return aiohttp.web.json_response(body, status=400)
            finally:
                seconds = time.perf_counter() - started
                self.service_times.append(seconds)
                if self.on_review is not None:
                    webhook = request.match_info.get("id", "")
                    self.on_review(
                        webhook if webhook in self.endpoints else "unknown",
                        result,
                        seconds,
                    )

        app = aiohttp.web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{id:.*}", handle)  # every answer is ours, even 404/405
        runner = aiohttp.web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            # No addr = ":PORT": IPv6 with IPv4 mapped, or IPv4 alone (carrier_sidecar.listen).
            sockets = listen_sockets(self.addr or "", self.port or 0)
            for sock in sockets:
                await aiohttp.web.SockSite(runner, sock, ssl_context=context).start()
            self.port = int(sockets[0].getsockname()[1])
            logger.info("admission webhooks listening", extra={"address": describe(sockets)})
            self.listening.set()
            yield self._client_config(material)
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.source.next_check())
                self._wake.clear()
                try:
                    renewed = await self.source.refresh()
                except (KubeAPIError, OSError, ValueError) as exc:
                    logger.error(
                        "webhook certificate check failed: will retry", extra={"error": str(exc)}
                    )
                    continue
                if renewed is not None:
                    try:
                        load_into(context, renewed)
                    except (ssl.SSLError, ValueError) as exc:  # keep serving the current one
                        logger.error(
                            "cannot load the renewed certificate", extra={"error": str(exc)}
                        )
                        continue
                    self.material = renewed
                    logger.info(
                        "serving the renewed certificate",
                        extra={"fingerprint": renewed.fingerprint},
                    )
                    yield self._client_config(renewed)
        finally:
            self.listening.clear()
            await runner.cleanup()

    async def _handle(
        self, fn: kopf.WebhookFn, request: aiohttp.web.Request
    ) -> tuple[aiohttp.web.Response, str]:
        """The answer, and how it went: allowed, denied, invalid (not a review) or error."""
        self.served += 1
        webhook = request.match_info.get("id", "")
        if request.method != "POST":
            body = review_response(None, allowed=False, code=405, message="POST an AdmissionReview")
            return aiohttp.web.json_response(body, status=405), "invalid"
        expected = self.endpoints.get(webhook)
        try:
            raw = await request.read()
        except aiohttp.web.HTTPRequestEntityTooLarge:
            body = review_response(None, allowed=False, code=413, message="request too large")
            return aiohttp.web.json_response(body, status=413), "invalid"
        if expected is None:
            message = f"no admission webhook at /{webhook}"
            body = review_response(_uid_only(raw), allowed=False, code=404, message=message)
            return aiohttp.web.json_response(body, status=404), "invalid"
        try:
            review = parse_review(raw, expected)
        except ReviewError as exc:
            body = review_response(_uid_only(raw), allowed=False, code=400, message=str(exc))
            return aiohttp.web.json_response(body, status=400), "invalid"
        headers = dict(request.headers)
        sslpeer = request.transport.get_extra_info("peercert") if request.transport else None
        try:
            # parse_review checked the shape kopf's reviews.Request TypedDict describes.
            checked: Any = review
            response = await fn(checked, webhook=webhook, sslpeer=sslpeer, headers=headers)
        except Exception as exc:
            # kopf's own request errors, or a bug: deny (what failurePolicy Fail would do) with a
            # readable message instead of a 500, and count it so tests catch it.
            self.internal_errors += 1
            logger.exception("admission review failed", extra={"uid": review["request"]["uid"]})
            message = f"the carrier injector failed: {type(exc).__name__}: {exc}"[:500]
            body = review_response(review, allowed=False, code=500, message=message)
            return aiohttp.web.json_response(body), "error"
        answered = response.get("response") if isinstance(response, Mapping) else None
        allowed = isinstance(answered, Mapping) and answered.get("allowed") is True
        return aiohttp.web.json_response(response), "allowed" if allowed else "denied"
