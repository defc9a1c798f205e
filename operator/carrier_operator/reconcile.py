"""What every replica runs through kopf for CarrierBindings: indices and change signals only.

No kopf change handler (``on.create/update/resume``) is registered: those write kopf's
annotations on the object from every replica. Every replica indexes bindings (for admission)
and labelled pods; the leader's reconcile loop (``checker.py`` + ``spec_sync.py``) does the
writing, woken by :func:`binding_changed` when a spec generation is new.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from . import admission
from .binding import BINDING_LABEL, GROUP, PLURAL, VERSION
from .book import Book
from .checker import Checker
from .config import OperatorSettings
from .kubeapi import KubeAPI
from .leader import LeaderElector, Leadership
from .queues import QueueReader

logger = logging.getLogger(__name__)

BINDINGS_INDEX = admission.INDEX  # the injector's index of binding specs and statuses
PODS_INDEX = "carrier_bound_pods"


@dataclass
class Runtime:
    """What the handlers share for one operator run (kept in kopf's memo)."""

    config: OperatorSettings
    api: KubeAPI
    book: Book
    reader: QueueReader
    checker: Checker
    leadership: Leadership
    identity: str

    async def close(self) -> None:
        await self.checker.stop()  # no more writes from here on
        if isinstance(self.leadership, LeaderElector):
            await self.leadership.stop()  # releases the Lease for a fast hand-over
        await self.reader.close()
        await self.api.close()


# --- indices -----------------------------------------------------------------------------------
@kopf.index("pods", labels={BINDING_LABEL: kopf.PRESENT}, id=PODS_INDEX)
def index_pod(
    namespace: str | None,
    name: str,
    labels: Mapping[str, str],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    memo: Any,
    **_: Any,
) -> dict[tuple[str, str], str] | None:
    """Live pods that opted into a binding (by label), keyed by (namespace, binding).

    It also nudges the checker to recount now (deletions, which kopf drops from the index
    without a call, are caught by the checker's periodic recount)."""
    key = (str(namespace), labels[BINDING_LABEL])
    carrier = getattr(memo, "carrier", None)
    if isinstance(carrier, Runtime):
        carrier.checker.touch(key, queue=False)
    if status.get("phase") in {"Succeeded", "Failed"} or meta.get("deletionTimestamp"):
        return None
    return {key: name}


# --- the bindings themselves ------------------------------------------------------------------
@kopf.on.event(GROUP, VERSION, PLURAL, id="carrier-binding-changed")
def binding_changed(
    namespace: str | None, name: str, meta: Mapping[str, Any], memo: Any, **_: Any
) -> None:
    """Every watch event of a binding: wake the reconcile loop if its spec generation is new
    (our own status writes bump no generation, so they wake nothing)."""
    carrier = getattr(memo, "carrier", None)
    if isinstance(carrier, Runtime):
        carrier.checker.changed((str(namespace), name), meta.get("generation"))
