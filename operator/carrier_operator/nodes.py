"""Native sidecar or regular container, decided from every node's kubelet, kept current.

Why nodes and not the API server: a native sidecar is an init container with
``restartPolicy: Always``, which only kubelets >= 1.29 run as a sidecar. An older kubelet runs
it as an ordinary init container that never exits, and the pod hangs in ``Init``. Upgrades move
the control plane first, and EKS allows kubelets three minors behind, so the API server's
version says nothing about the node a pod lands on. In ``auto`` mode the injector therefore
injects a native sidecar only while *every* node's ``status.nodeInfo.kubeletVersion`` is >= 1.29,
from a paginated list + watch of nodes (read-only RBAC on nodes); nodes that cannot be read mean
regular containers, said in the log.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .kubeapi import KubeAPI, KubeAPIError

logger = logging.getLogger(__name__)

NATIVE_SIDECAR_MINOR = 29  # KEP-753 beta, on by default
NODES_PATH = "/api/v1/nodes"
PAGE_SIZE = 500
WATCH_SECONDS = 300  # the API server ends each watch after this; we relist and watch again
RETRY_DELAY = 10.0  # after a failed list or a broken watch

Version = tuple[int, int]


def parse_kubelet_version(text: Any) -> Version | None:
    """``v1.29.3-eks-5e0fdde`` → (1, 29); ``v1.30.0+k3s1`` → (1, 30); garbage → None."""
    found = re.match(r"v?(\d+)\.(\d+)", str(text or "").strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def kubelet_of(node: Mapping[str, Any]) -> Version | None:
    status = node.get("status")
    info = status.get("nodeInfo") if isinstance(status, Mapping) else None
    return parse_kubelet_version(info.get("kubeletVersion") if isinstance(info, Mapping) else None)


@dataclass(frozen=True)
class SidecarMode:
    """The mode in force and why, as the log and the pod's annotation say it."""

    native: bool
    reason: str

    def __str__(self) -> str:
        return f"{'native' if self.native else 'regular'} ({self.reason})"


def decide(mode: str, kubelets: Mapping[str, Version | None] | None) -> SidecarMode:
    """``always``/``never`` as configured; ``auto`` = every known node's kubelet >= 1.29."""
    if mode == "always":
        return SidecarMode(True, "nativeSidecar: always")
    if mode == "never":
        return SidecarMode(False, "nativeSidecar: never")
    if kubelets is None:
        return SidecarMode(False, "nodes cannot be read")
    if not kubelets:
        return SidecarMode(False, "no nodes seen")
    floor = (1, NATIVE_SIDECAR_MINOR)
    old = sorted(name for name, version in kubelets.items() if version is None or version < floor)
    total = len(kubelets)
    if not old:
        return SidecarMode(True, f"all {total} nodes >= 1.{NATIVE_SIDECAR_MINOR}")
    named = ", ".join(old[:3]) + (", ..." if len(old) > 3 else "")
    return SidecarMode(
        False, f"{len(old)} of {total} nodes below 1.{NATIVE_SIDECAR_MINOR} or unknown: {named}"
    )


class NodeKubelets:
    """The cluster's nodes → kubelet version, kept by a list + watch loop (:meth:`run`)."""

    def __init__(self, mode: str, get_api: Callable[[], Awaitable[KubeAPI]]) -> None:
        self._mode = mode
        self._get_api = get_api
        self.kubelets: dict[str, Version | None] | None = None  # None: not (or no longer) read
        self._reported: SidecarMode | None = None
        self.synced = asyncio.Event()  # set after the first list, whatever its outcome

    @property
    def mode(self) -> SidecarMode:
        """The decision for the nodes known now (kept from the last change: O(1) per pod)."""
        return self._reported or decide(self._mode, self.kubelets)

    async def run(self) -> None:
        """List then watch, forever; a failed list falls back to regular containers."""
        if self._mode != "auto":
            self._report()
            self.synced.set()
            return
        while True:
            try:
                version = await self._list()
            except KubeAPIError as exc:
                self.kubelets = None
                self._report(f"cannot list nodes ({exc})")
                self.synced.set()
                await asyncio.sleep(RETRY_DELAY)
                continue
            self.synced.set()
            try:
                await self._watch(version)
            except KubeAPIError as exc:  # keep what we know; relist after a pause
                logger.info("node watch ended: listing nodes again", extra={"error": str(exc)})
                await asyncio.sleep(RETRY_DELAY)

    async def _list(self) -> str | None:
        api = await self._get_api()
        found: dict[str, Version | None] = {}
        token: str | None = None
        version: str | None = None
        while True:  # bounded by the server: each page hands the next token, the last none
            query = {"limit": str(PAGE_SIZE), **({"continue": token} if token else {})}
            page = await api.get(f"{NODES_PATH}?{urlencode(query)}")
            if page is None:
                raise KubeAPIError(404, "nodes are not served")
            for node in page.get("items") or []:
                name = (node.get("metadata") or {}).get("name")
                if isinstance(name, str):
                    found[name] = kubelet_of(node)
            meta = page.get("metadata") or {}
            version = meta.get("resourceVersion")
            token = meta.get("continue") or None
            if token is None:
                break
        self.kubelets = found
        self._report()
        return version if isinstance(version, str) else None

    async def _watch(self, version: str | None) -> None:
        api = await self._get_api()
        query = {"watch": "true", "timeoutSeconds": str(WATCH_SECONDS)}
        if version:
            query["resourceVersion"] = version
        async for event in api.watch(
            f"{NODES_PATH}?{urlencode(query)}", idle_timeout=WATCH_SECONDS + 30
        ):
            kind, node = event.get("type"), event.get("object")
            if kind == "ERROR" or not isinstance(node, Mapping):
                code = node.get("code") if isinstance(node, Mapping) else None
                raise KubeAPIError(code if isinstance(code, int) else 0, "watch error (relist)")
            name = (node.get("metadata") or {}).get("name")
            if not isinstance(name, str) or self.kubelets is None:
                continue
            if kind == "DELETED":
                self.kubelets.pop(name, None)
            elif kind in {"ADDED", "MODIFIED"}:
                kubelet = kubelet_of(node)
                if name in self.kubelets and self.kubelets[name] == kubelet:
                    continue  # a status heartbeat: nothing to decide again
                self.kubelets[name] = kubelet
            else:
                continue  # BOOKMARK
            self._report()

    def _report(self, problem: str | None = None) -> None:
        """Log the mode when it changes (and why), not on every node heartbeat."""
        mode = decide(self._mode, self.kubelets)
        if mode == self._reported:
            return
        self._reported = mode
        if problem is not None:
            logger.warning(
                "sidecar mode: injecting regular containers",
                extra={"mode": str(mode), "problem": problem},
            )
        else:
            logger.info("sidecar mode", extra={"mode": str(mode)})
