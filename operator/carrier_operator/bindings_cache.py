"""Where the injector finds a pod's CarrierBinding: kopf's in-memory index, else one API GET.

Admission must be fast and must not depend on the API server per pod, so the index answers once
kopf has listed the bindings. Until then (start-up), or for a namespace the operator does not
watch, a single GET answers instead. Only the pod's own namespace is ever consulted.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .binding import GROUP, PLURAL, VERSION
from .injection import Binding
from .kubeapi import KubeAPI

Key = tuple[str, str]


def index_entry(namespace: str, name: str, body: Mapping[str, Any]) -> dict[Key, dict[str, Any]]:
    """What kopf's index keeps per binding: a private copy of spec and status, and the
    ``generation`` and ``uid`` the reconcile loop needs (status, Events)."""
    meta = body.get("metadata") or {}
    return {
        (namespace, name): {
            "spec": copy.deepcopy(dict(body.get("spec") or {})),
            "status": copy.deepcopy(dict(body.get("status") or {})),
            "generation": meta.get("generation"),
            "uid": meta.get("uid"),
        }
    }


class BindingLookup:
    """Index first; the API only while the index is not trusted for that namespace."""

    def __init__(self, api: Callable[[], Awaitable[KubeAPI]], namespaces: list[str]) -> None:
        self._api = api
        self._namespaces = frozenset(namespaces)
        self.synced = False
        self.api_lookups = 0

    def mark_synced(self) -> None:
        """kopf runs non-index handlers only after all indices are filled: the first one calls this."""
        self.synced = True

    def _indexed(self, namespace: str) -> bool:
        return self.synced and (not self._namespaces or namespace in self._namespaces)

    async def find(
        self, index: Mapping[Any, Any] | None, namespace: str, name: str
    ) -> Binding | None:
        if index is not None and self._indexed(namespace):
            for entry in index.get((namespace, name), ()):
                return Binding(name, namespace, entry["spec"], entry["status"])
            return None
        self.api_lookups += 1
        api = await self._api()
        obj = await api.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}")
        if obj is None:
            return None
        found = Binding.from_object(obj)
        # Trust the path we asked for, not the body, for the namespace and name.
        return Binding(name, namespace, found.spec, found.status)
