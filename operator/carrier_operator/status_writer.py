"""The operator's notebook: what it observed per binding, and the one place status is written.

Writes are serialised per binding and skipped when nothing changed, so the status subresource
only moves on news (and on every queue check, which stamps ``lastChecked``). Each write is fenced:
only the leader (``leader.py``) writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from .binding import GROUP, PLURAL, VERSION
from .kubeapi import MERGE_PATCH, KubeAPI, KubeAPIError
from .leader import Leadership, NotLeader, SoleReplica, fence
from .status import Observed, now_iso, render

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, binding name)


def status_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"


class StatusWriter:
    def __init__(self, api: KubeAPI, leadership: Leadership | None = None) -> None:
        self.api = api
        self.leadership: Leadership = leadership or SoleReplica()
        self._observed: dict[Key, Observed] = {}
        self._written: dict[Key, dict[str, Any]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def observed(self, key: Key, status: Mapping[str, Any] | None = None) -> Observed:
        """The binding's notes, started from its current ``status`` the first time."""
        obs = self._observed.get(key)
        if obs is None:
            obs = self._observed[key] = Observed()
            if status:
                obs.seed(status)
        return obs

    def keys(self) -> list[Key]:
        return list(self._observed)

    def items(self) -> list[tuple[Key, Observed]]:
        """Every binding's notes (what the metrics render from)."""
        return list(self._observed.items())

    def clear(self) -> None:
        """Forget every note (on taking leadership: start again from the statuses written)."""
        self._observed.clear()
        self._written.clear()
        self._locks.clear()

    def forget(self, key: Key) -> None:
        self._observed.pop(key, None)
        self._written.pop(key, None)
        self._locks.pop(key, None)

    async def publish(self, key: Key) -> bool:
        """Write the binding's status if it changed; False if the binding is gone."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            obs = self._observed.get(key)
            if obs is None:
                return False
            status = render(obs, now_iso())
            if self._written.get(key) == status:
                return True
            fence(self.leadership)
            answer = await self.api.request(
                "PATCH", status_path(*key), {"status": status}, content_type=MERGE_PATCH
            )
            if answer is None:  # 404: deleted meanwhile
                self.forget(key)
                return False
            self._written[key] = status
            return True

    async def try_publish(self, key: Key) -> bool:
        """Publish, logging (not raising) API failures: the next change or check retries.
        A replica that is not the leader writes nothing (:class:`NotLeader` is not an error).
        False if the API refused the write."""
        try:
            await self.publish(key)
        except NotLeader:
            logger.debug(
                "not the leader: status left to the leader",
                extra={"namespace": key[0], "binding": key[1]},
            )
        except KubeAPIError as exc:
            logger.warning(
                "cannot write the status",
                extra={"namespace": key[0], "binding": key[1], "error": str(exc)},
            )
            return False
        return True
