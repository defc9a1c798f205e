"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

Every replica serves admission and keeps kopf's indices; only the holder of the Lease writes
(status, Events, rollout patches). The rules are client-go's:

- A candidate takes the Lease only when its holder has not renewed it for ``leaseDurationSeconds``
  measured on the *candidate's own* clock, from when the candidate last saw the record change;
  no two clocks are ever compared, so clock skew between nodes does not matter.
- Every write carries the ``resourceVersion`` it read, so of two candidates racing for an expired
  Lease the API server lets exactly one win (the other gets 409 Conflict).
- The leader renews every ``retry_period``; when it has not renewed for ``renew_deadline`` it
  stops writing at once (:meth:`LeaderElector.is_leader` turns False by itself, before the loop
  even notices), which is ``lease_duration - renew_deadline`` before any follower may take over.
- On a graceful stop the leader releases the Lease (``leaseDurationSeconds: 1``), so a rolling
  update hands over within a couple of seconds instead of a whole lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from .background import cancel_and_wait
from .kubeapi import MERGE_PATCH, KubeAPI, KubeAPIError

logger = logging.getLogger(__name__)

JITTER = 1.2  # followers wait retry_period * (1 + random * JITTER), as client-go's JitterUntil


class NotLeader(Exception):
    """Raised by a fenced write when this replica is not (or no longer) the leader."""


class Leadership(Protocol):
    def is_leader(self) -> bool: ...


class SoleReplica:
    """Leader election turned off: this replica is the only one and always writes."""

    identity = "sole-replica"

    def is_leader(self) -> bool:
        return True


def fence(leadership: Leadership) -> None:
    """Call immediately before a write: raises :class:`NotLeader` unless we lead right now."""
    if not leadership.is_leader():
        raise NotLeader("not the leader: the write is left to the replica holding the Lease")


def default_identity() -> str:
    """The pod's name (``POD_NAME``, else the hostname, which is the pod name in Kubernetes)
    plus a random suffix, so a restarted container never mistakes its predecessor's Lease for
    its own."""
    base = os.environ.get("POD_NAME") or socket.gethostname() or "carrier-operator"
    return f"{base}_{uuid.uuid4().hex[:8]}"


def micro_time(now: float | None = None) -> str:
    """A Kubernetes ``MicroTime``."""
    moment = datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{base}/{name}" if name else base


class LeaderElector:
    """Campaigns for one Lease until stopped; :meth:`is_leader` is the fence for every write."""

    def __init__(
        self,
        api: KubeAPI,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._observed: dict[str, Any] = {}  # the Lease spec as last read or written
        self._observed_at = 0.0  # our clock when that record was first seen
        self._renewed_at: float | None = None  # our clock before our last successful write
        self._leading = False  # as last reported to the callbacks
        self._holder: str | None = None
        self._task: asyncio.Task[None] | None = None

    # --- what the rest of the operator asks ------------------------------------------------
    def is_leader(self) -> bool:
        """We hold the Lease and renewed it within ``renew_deadline`` (our clock)."""
        if self._renewed_at is None or self._observed.get("holderIdentity") != self.identity:
            return False
        return self._clock() - self._renewed_at < self.renew_deadline

    @property
    def holder(self) -> str | None:
        """The holder as last observed (ours or another replica's)."""
        return self._holder

    # --- running ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="carrier leader election")

    async def stop(self) -> None:
        """Stop campaigning and, if we lead, release the Lease for a fast hand-over."""
        await cancel_and_wait(self._task)
        self._task = None
        if self.is_leader():
            with contextlib.suppress(KubeAPIError, TimeoutError):
                async with asyncio.timeout(self.retry_period * 2):
                    await self._release()
        self._renewed_at = None
        self._report()

    async def run(self) -> None:
        logger.info(
            "leader election: campaigning for the Lease",
            extra={
                "identity": self.identity,
                "lease": f"{self.namespace}/{self.name}",
                "lease_duration": self.lease_duration,
                "renew_deadline": self.renew_deadline,
            },
        )
        while True:
            try:
                async with asyncio.timeout(self.renew_deadline):
                    await self.try_acquire_or_renew()
            except (KubeAPIError, TimeoutError) as exc:
                logger.warning(
                    "leader election: cannot acquire or renew the Lease",
                    extra={"lease": f"{self.namespace}/{self.name}", "error": str(exc)},
                )
            except Exception:  # e.g. a malformed Lease: keep campaigning, never die silently
                logger.exception(
                    "leader election: round failed",
                    extra={"lease": f"{self.namespace}/{self.name}"},
                )
            self._report()
            delay = self.retry_period
            if not self.is_leader():
                delay *= 1 + random.random() * JITTER
            await asyncio.sleep(delay)

    async def try_acquire_or_renew(self) -> bool:
        """One round of client-go's ``tryAcquireOrRenew``: True if we hold the Lease now."""
        started = self._clock()
        now = micro_time()
        lease = await self.api.get(lease_path(self.namespace, self.name))
        if lease is None:
            return await self._create(started, now)
        spec: dict[str, Any] = dict(lease.get("spec") or {})
        if spec != self._observed:
            self._observed, self._observed_at = spec, started
        holder = spec.get("holderIdentity") or None
        self._holder = holder
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and started < self._observed_at + duration:
            return False  # held by another replica, which renewed it recently enough
        ours = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        record = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": spec.get("acquireTime") if ours else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours else transitions + 1,
        }
        version = (lease.get("metadata") or {}).get("resourceVersion")
        patch = {"metadata": {"resourceVersion": version}, "spec": record}
        try:
            answer = await self.api.request(
                "PATCH", lease_path(self.namespace, self.name), patch, content_type=MERGE_PATCH
            )
        except KubeAPIError as exc:
            if exc.status == 409:  # another candidate wrote first: it won this round
                return False
            raise
        if answer is None:
            return False  # deleted meanwhile: create it next round
        self._took(record, started)
        return True

    async def _create(self, started: float, now: str) -> bool:
        record = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record,
        }
        try:
            await self.api.request("POST", lease_path(self.namespace), body)
        except KubeAPIError as exc:
            if exc.status == 409:  # created by another candidate just now
                return False
            raise
        self._took(record, started)
        return True

    def _took(self, record: dict[str, Any], started: float) -> None:
        self._observed, self._observed_at = dict(record), started
        self._renewed_at = started
        self._holder = self.identity

    async def _release(self) -> None:
        """client-go's ``release``: leave the Lease holderless and expiring in one second."""
        now = micro_time()
        record = {
            "holderIdentity": None,
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
        }
        await self.api.request(
            "PATCH",
            lease_path(self.namespace, self.name),
            {"spec": record},
            content_type=MERGE_PATCH,
        )
        logger.info(
            "leader election: released the Lease",
            extra={"identity": self.identity, "lease": f"{self.namespace}/{self.name}"},
        )

    def _report(self) -> None:
        """Log and call back on each change of leadership (ours) and of the observed holder."""
        leading = self.is_leader()
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            logger.info("leader election: became the leader", extra={"identity": self.identity})
            if self._on_started is not None:
                self._on_started()
        else:
            logger.info(
                "leader election: stopped leading",
                extra={"identity": self.identity, "holder": self._holder or "nobody"},
            )
            if self._on_stopped is not None:
                self._on_stopped()
