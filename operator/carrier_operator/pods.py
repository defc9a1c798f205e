"""The live pods of each binding, from a labelled, paginated list and watch of pods.

Why not a kopf index: kopf filters an index's labels client-side, so it lists and watches every
pod in the cluster, unpaginated, and keeps each one in its machinery; with thousands of pods
that alone outgrows the operator's memory limit. Here the API server does the filtering
(``labelSelector`` = the binding label exists), lists come in pages of ``PAGE_SIZE``, and only
(namespace, binding) -> pod names are kept. The watch resumes from the list's
resourceVersion, relists on 410 Gone, and reconnects after a bounded backoff.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .background import cancel_and_wait
from .binding import BINDING_LABEL
from .kubeapi import KubeAPI, KubeAPIError

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, binding name)
PAGE_SIZE = 500
WATCH_TIMEOUT = 300  # seconds: the server ends each watch; it resumes from the last version
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # seconds between failed attempts, capped
MAX_PAGES = 10_000  # a bound on one list (5 million pods), against a looping continue token
SELECTOR = BINDING_LABEL  # existence: every pod that opted into some binding


class Gone(Exception):
    """410: the version to resume from is no longer kept; list again."""


def is_live(pod: Mapping[str, Any]) -> bool:
    """Counted as bound: not finished (Succeeded/Failed) and not being deleted."""
    meta = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    return phase not in {"Succeeded", "Failed"} and not meta.get("deletionTimestamp")


class BoundPods(Mapping[Key, frozenset[str]]):
    """(namespace, binding) -> names of its live pods; the mapping the Checker reads."""

    def __init__(self) -> None:
        self._names: dict[Key, set[str]] = {}
        self._binding: dict[tuple[str, str], Key] = {}  # (namespace, pod) -> its key

    def __getitem__(self, key: Key) -> frozenset[str]:
        return frozenset(self._names[key])

    def __iter__(self) -> Iterator[Key]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def apply(self, pod: Mapping[str, Any]) -> set[Key]:
        """Record a pod as it is now; the keys whose pod set changed."""
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        binding = str((meta.get("labels") or {}).get(BINDING_LABEL) or "")
        if not binding or not is_live(pod):
            return self.remove(namespace, name)
        key = (namespace, binding)
        if self._binding.get((namespace, name)) == key:
            return set()
        changed = self.remove(namespace, name)  # relabelled from another binding
        self._binding[(namespace, name)] = key
        self._names.setdefault(key, set()).add(name)
        return changed | {key}

    def remove(self, namespace: str, name: str) -> set[Key]:
        key = self._binding.pop((namespace, name), None)
        if key is None:
            return set()
        names = self._names.get(key, set())
        names.discard(name)
        if not names:
            self._names.pop(key, None)
        return {key}

    def replace(self, namespace: str | None, pods: Iterable[Mapping[str, Any]]) -> set[Key]:
        """A fresh list of one scope (a namespace, or None for all): pods missing from it left
        while the watch was down."""
        changed: set[Key] = set()
        seen: set[tuple[str, str]] = set()
        for pod in pods:
            meta = pod.get("metadata") or {}
            seen.add((str(meta.get("namespace") or ""), str(meta.get("name") or "")))
            changed |= self.apply(pod)
        stale = [
            pod
            for pod in self._binding
            if pod not in seen and (namespace is None or pod[0] == namespace)
        ]
        for pod_namespace, name in stale:
            changed |= self.remove(pod_namespace, name)
        return changed


def _pods_path(namespace: str | None) -> str:
    return f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"


class PodWatcher:
    """Keeps :attr:`index` current: one list+watch per watched namespace (or one for all)."""

    def __init__(
        self,
        api: KubeAPI,
        namespaces: Sequence[str] = (),
        *,
        on_change: Callable[[Key], None] | None = None,
        page_size: int = PAGE_SIZE,
        watch_timeout: int = WATCH_TIMEOUT,
    ) -> None:
        self.api = api
        self.scopes: list[str | None] = list(namespaces) or [None]
        self.on_change = on_change
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.index = BoundPods()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, first_list_timeout: float = 30.0) -> None:
        """Follow every scope; wait (bounded) until each has been listed once, so counts are
        right from the first status written. A scope that cannot be listed yet keeps retrying
        in the background."""
        listed = [asyncio.Event() for _ in self.scopes]
        self._tasks = [
            asyncio.create_task(self._follow(scope, done), name=f"carrier pods {scope or '*'}")
            for scope, done in zip(self.scopes, listed, strict=True)
        ]
        waits = [asyncio.create_task(done.wait()) for done in listed]
        _, pending = await asyncio.wait(waits, timeout=first_list_timeout)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning(
                "pods not listed in time; counts follow when they are",
                extra={"timeout_seconds": first_list_timeout},
            )

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    def _changed(self, keys: Iterable[Key]) -> None:
        if self.on_change is not None:
            for key in keys:
                self.on_change(key)

    async def _follow(self, namespace: str | None, listed: asyncio.Event) -> None:
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._relist(namespace)
                    listed.set()
                version = await self._watch(namespace, version)
                failures = 0
            except Gone:
                logger.info(
                    "pod watch expired (410): listing again",
                    extra={"namespace": namespace or "*"},
                )
                version = None
            except KubeAPIError as exc:
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                logger.warning(
                    "cannot list or watch pods: retrying",
                    extra={"namespace": namespace or "*", "error": str(exc), "retry_in": delay},
                )
                await asyncio.sleep(delay)

    async def _relist(self, namespace: str | None) -> str:
        """Every labelled pod of the scope, page by page; the list's resourceVersion."""
        pods: list[dict[str, Any]] = []
        token, version = "", ""
        for _ in range(MAX_PAGES):
            query = {"labelSelector": SELECTOR, "limit": str(self.page_size)}
            if token:
                query["continue"] = token
            path = f"{_pods_path(namespace)}?{urllib.parse.urlencode(query)}"
            page = await self.api.get(path) or {}
            for item in page.get("items") or ():
                if isinstance(item, dict):
                    pods.append(_slim(item))
            meta = page.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")
            token = str(meta.get("continue") or "")
            if not token:
                break
        self._changed(self.index.replace(namespace, pods))
        logger.debug(
            "labelled pods listed", extra={"namespace": namespace or "*", "pods": len(pods)}
        )
        return version

    async def _watch(self, namespace: str | None, version: str) -> str:
        """Apply events until the server ends the stream; the last resourceVersion seen."""
        query = {
            "watch": "true",
            "labelSelector": SELECTOR,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        if version:
            query["resourceVersion"] = version
        path = f"{_pods_path(namespace)}?{urllib.parse.urlencode(query)}"
        try:
            async for event in self.api.watch(path, idle_timeout=self.watch_timeout + 60):
                version = self._apply(event, version)
        except KubeAPIError as exc:
            if exc.status == 410:
                raise Gone from exc
            raise
        return version

    def _apply(self, event: Mapping[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise Gone
            raise KubeAPIError(code, str(obj.get("message") or "watch error"))
        meta = obj.get("metadata") or {}
        if kind in {"ADDED", "MODIFIED"}:
            self._changed(self.index.apply(obj))
        elif kind == "DELETED":
            self._changed(
                self.index.remove(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            )
        return str(meta.get("resourceVersion") or version)


def _slim(pod: Mapping[str, Any]) -> dict[str, Any]:
    """Only what the index reads: a page of full pods is dropped as soon as it is read."""
    meta = pod.get("metadata") or {}
    return {
        "metadata": {
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "labels": {BINDING_LABEL: (meta.get("labels") or {}).get(BINDING_LABEL)},
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "status": {"phase": (pod.get("status") or {}).get("phase")},
    }
