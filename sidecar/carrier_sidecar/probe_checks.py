"""What ``/healthz`` and ``/readyz`` answer, wherever the port is served.

A check is one of the app's callables (:meth:`.liveness.Liveness.live`, the sidecar's readiness);
it is evaluated in the delivering process, and the answer may be written in another one (the
probe process of :mod:`.probe_process`), so the two steps are apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .probe_http import Answer

log = logging.getLogger("carrier.probes")

Outcome = tuple[bool, str]  # (passed, why not)


def evaluate(name: str, check: Callable[[], bool]) -> Outcome:
    try:
        ok = bool(check())
    except Exception as exc:  # a probe must answer, whatever the check did
        reason = f"{name} check raised {type(exc).__name__}: {exc}"
        log.warning("probe check failed", extra={"probe": name, "error": reason})
        return False, reason
    return ok, "" if ok else f"{name} check returned false"


def answer(name: str, outcome: Outcome) -> Answer:
    ok, reason = outcome
    body: dict[str, object] = {name: ok}
    if reason:
        body["reason"] = reason
    return Answer.json(200 if ok else 503, body)
