"""What ``/healthz`` and ``/readyz`` answer, wherever the port is served.

A check is one of the app's callables (:meth:`.liveness.Liveness.live`, the sidecar's readiness);
it is evaluated in the delivering process, and the answer may be written in another one (the
probe process of :mod:`.probe_process`), so the two steps are apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

from .probe_http import Answer

log = logging.getLogger("carrier.probes")


class Outcome(NamedTuple):
    ok: bool
    reason: str = ""  # why not
    raised: bool = False  # the check itself failed (a bug in it): worth a warning


def evaluate(name: str, check: Callable[[], bool]) -> Outcome:
    try:
        ok = bool(check())
    except Exception as exc:  # a probe must answer, whatever the check did
        return Outcome(False, f"{name} check raised {type(exc).__name__}: {exc}", raised=True)
    return Outcome(ok, "" if ok else f"{name} check returned false")


def warn(name: str, outcome: Outcome) -> None:
    if outcome.raised:
        log.warning("probe check failed", extra={"probe": name, "error": outcome.reason})


def answer(name: str, outcome: Outcome) -> Answer:
    body: dict[str, object] = {name: outcome.ok}
    if outcome.reason:
        body["reason"] = outcome.reason
    return Answer.json(200 if outcome.ok else 503, body)
