"""What every replica runs through kopf for CarrierBindings: indices and change signals only.

No kopf change handler (``on.create/update/resume``) is registered: those write kopf's
annotations on the object from every replica. Every replica indexes bindings (for admission)
and labelled pods; the leader's reconcile loop (``checker.py`` + ``spec_sync.py``) does the
writing, woken by :func:`binding_changed` when a spec generation is new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from . import admission
from .binding import GROUP, PLURAL, VERSION
from .checker import Checker
from .config import OperatorSettings
from .kubeapi import KubeAPI
from .leader import LeaderElector, Leadership
from .queues import QueueReader
from .scheduler import Scheduler
from .status_writer import StatusWriter

logger = logging.getLogger(__name__)

BINDINGS_INDEX = admission.INDEX  # the injector's index of binding specs and statuses


@dataclass
class Runtime:
    """What the handlers share for one operator run (kept in kopf's memo)."""

    config: OperatorSettings
    api: KubeAPI
    statuses: StatusWriter
    reader: QueueReader
    checker: Checker
    leadership: Leadership
    identity: str
    scheduler: Scheduler | None = None
    # Set by the first binding event: kopf runs it only once its indices are filled.
    indexed: asyncio.Event = field(default_factory=asyncio.Event)

    async def close(self) -> None:
        await self.checker.stop()  # no more writes from here on
        if self.scheduler is not None:
            await self.scheduler.stop()  # nor sends
        if isinstance(self.leadership, LeaderElector):
            await self.leadership.stop()  # releases the Lease for a fast hand-over
        await self.reader.close()
        await self.api.close()


# --- the bindings themselves ------------------------------------------------------------------
@kopf.on.event(GROUP, VERSION, PLURAL, id="carrier-binding-changed")
async def binding_changed(
    namespace: str | None, name: str, meta: Mapping[str, Any], memo: Any, **_: Any
) -> None:
    """Every watch event of a binding: wake the reconcile loop if its spec generation is new
    (our own status writes bump no generation, so they wake nothing). Async: kopf would run a
    plain function in its thread pool, a thread hop per event."""
    carrier = getattr(memo, "carrier", None)
    if isinstance(carrier, Runtime):
        carrier.indexed.set()
        carrier.checker.changed((str(namespace), name), meta.get("generation"))
