"""Jepsen-style accounting: every id sent is accounted for, every duplicate gets a cause.

Pure: it reads the webhook's deliveries, the proxy's ledger of what the SQS server answered,
how each sidecar incarnation ended and when the SQS server was out, and says what happened.

A duplicate is every 2xx delivery of an id after its first. For each, with ``prev`` the 2xx
before it and ``nxt`` the receive that led to it, the cause is the first that holds:

``server``      the server handed the message out again while the previous receipt was surely
                still invisible, to two receives that overlapped in time, or after a delete it
                had acknowledged (its own at-least-once);
``sigkill``     the incarnation that got ``prev``'s 2xx was SIGKILLed before the message came
                back, and no delete of it had been acknowledged;
``sqs_outage``  an SQS outage or freeze overlapped the time from ``prev``'s receive request (when
                SQS starts the visibility clock) to the re-receive: the delete could not reach
                the server before the visibility ran out;
``sigterm``     the incarnation was SIGTERMed before the message came back and its drain did
                not get the delete acknowledged by its exit (the graceful path's bug: must be 0);
``timeout``     the visibility had surely run out while ``prev``'s POST was still running (a
                slow answer outlived the heartbeat);
``late_ack``    the delete was acknowledged, but only after the message had been handed out again
                (acknowledgement slower than the visibility timeout, no fault involved);
``sidecar``     anything else: a 2xx that was never acknowledged although nothing interfered,
                or the same receive posted twice.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tests.chaos.faulty_webhook import Delivery
from tests.support.sidecar_runner import Incarnation
from tests.support.sqs_proxy import Ack, Ledger, Receive

CAUSES = ("server", "sigkill", "sqs_outage", "sigterm", "timeout", "late_ack", "sidecar")


@dataclass(frozen=True)
class Window:
    """A span of time during which the SQS server was unreachable or frozen."""

    kind: str
    t_start: float
    t_end: float


@dataclass
class Report:
    sent: int
    delivered: int
    deliveries_2xx: int
    lost: list[str]
    duplicates: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    order_violations: list[str] = field(default_factory=list)
    order_violations_server: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.sent,
            "delivered": self.delivered,
            "deliveries_2xx": self.deliveries_2xx,
            "lost": len(self.lost),
            "duplicates": sum(self.duplicates.values()),
            "duplicates_by_cause": {cause: self.duplicates.get(cause, 0) for cause in CAUSES},
            "fifo_order_violations": len(self.order_violations),
            "fifo_order_violations_by_server": len(self.order_violations_server),
        }


@dataclass
class _Ledgers:
    """The ledger indexed by message id."""

    receives: dict[str, list[Receive]]
    handles: dict[str, set[str]]
    deletes: dict[str, list[Ack]]
    ops: dict[str, list[tuple[float, float, float]]]  # (t_req, t_resp, seconds) per id

    @classmethod
    def build(cls, ledger: Ledger) -> _Ledgers:
        receives: dict[str, list[Receive]] = defaultdict(list)
        handles: dict[str, set[str]] = defaultdict(set)
        owner: dict[str, str] = {}
        ops: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        for receive in ledger.receives:
            for mid, handle in receive.items:
                receives[mid].append(receive)
                handles[mid].add(handle)
                owner[handle] = mid
                ops[mid].append((receive.t_req, receive.t_resp, receive.visibility))
        deletes: dict[str, list[Ack]] = defaultdict(list)
        for ack in ledger.acks:
            for handle, seconds in ack.handles:
                whose = owner.get(handle)
                if whose is None:
                    continue
                if ack.kind == "delete":
                    deletes[whose].append(ack)
                else:
                    ops[whose].append((ack.t_req, ack.t_resp, seconds))
        for items in ops.values():
            items.sort()
        return cls(receives, handles, deletes, ops)

    def receive_before(self, mid: str, incarnation: int, t: float) -> Receive | None:
        found = [
            r for r in self.receives.get(mid, []) if r.incarnation == incarnation and r.t_resp <= t
        ]
        return max(found, key=lambda r: r.t_resp) if found else None

    def surely_invisible(self, mid: str, until: Receive) -> bool:
        """Was the message certainly still invisible when ``until`` was answered?"""
        before = [
            op for op in self.ops.get(mid, []) if op[0] < until.t_resp and op[0] != until.t_req
        ]
        if not before:
            return False
        t_req, t_resp, seconds = max(before)
        return t_resp <= until.t_req and t_req + seconds > until.t_resp

    def surely_visible_by(self, mid: str, t: float) -> bool:
        """Had the visibility certainly run out by ``t`` (nothing extended it in time)?"""
        before = [op for op in self.ops.get(mid, []) if op[0] < t]
        if not before:
            return False
        _, t_resp, seconds = max(before)
        return t_resp + seconds < t


def account(
    sent: Iterable[str],
    deliveries: Sequence[Delivery],
    ledger: Ledger,
    incarnations: Sequence[Incarnation],
    windows: Sequence[Window],
) -> Report:
    ids = list(sent)
    ok: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in sorted(deliveries, key=lambda d: d.t_start):
        if delivery.outcome == "ok":
            ok[delivery.id].append(delivery)
    report = Report(
        sent=len(ids),
        delivered=sum(1 for i in ids if ok.get(i)),
        deliveries_2xx=sum(len(v) for v in ok.values()),
        lost=[i for i in ids if not ok.get(i)],
    )
    index = _Ledgers.build(ledger)
    by_number = {inc.number: inc for inc in incarnations}
    for mid, copies in ok.items():
        for prev, nxt in itertools.pairwise(copies):
            cause = _cause(mid, prev, nxt, index, by_number, windows)
            report.duplicates[cause] += 1
            report.examples.setdefault(cause, [])
            if len(report.examples[cause]) < 5:
                report.examples[cause].append(f"{mid}: inc {prev.incarnation} → {nxt.incarnation}")
    return report


def _cause(
    mid: str,
    prev: Delivery,
    nxt: Delivery,
    index: _Ledgers,
    incarnations: dict[int, Incarnation],
    windows: Sequence[Window],
) -> str:
    r_prev = index.receive_before(mid, prev.incarnation, prev.t_start)
    r_next = index.receive_before(mid, nxt.incarnation, nxt.t_start)
    if r_prev is None or r_next is None or r_next is r_prev:
        return "sidecar"
    deletes = index.deletes.get(mid, [])
    overlapping = r_next.t_req < r_prev.t_resp and r_prev.t_req < r_next.t_resp
    if (
        overlapping
        or index.surely_invisible(mid, r_next)
        or any(a.t_resp < r_next.t_req for a in deletes)
    ):
        return "server"
    inc = incarnations.get(prev.incarnation)
    own_deletes = [a for a in deletes if a.incarnation == prev.incarnation]
    if (
        inc is not None
        and inc.ended_by == "sigkill"
        and inc.t_signal is not None
        and inc.t_signal < r_next.t_resp
    ):
        return "sigkill"
    if any(w.t_start < r_next.t_resp and w.t_end > r_prev.t_req for w in windows):
        return "sqs_outage"
    if (
        inc is not None
        and inc.ended_by in ("sigterm", "sigterm-hung")
        and inc.t_signal is not None
        and inc.t_signal < r_next.t_resp
        and not any(inc.t_exit is None or a.t_resp <= inc.t_exit for a in own_deletes)
    ):
        return "sigterm"
    if index.surely_visible_by(mid, prev.t_end):
        return "timeout"
    if own_deletes:
        return "late_ack"
    return "sidecar"


def order_violations(deliveries: Sequence[Delivery], ledger: Ledger) -> tuple[list[str], list[str]]:
    """FIFO: in each group, first successful deliveries must come in ``seq`` order.

    Returns (the sidecar's violations, the server's). The server is at fault when it handed the
    later message out while the earlier one was not in that same receive: a FIFO queue must not
    release a group's tail before its head is deleted (moto 5.2.5 does, when an in-flight batch
    of a group times out). The sidecar is at fault when both came in one receive, in order, and
    it delivered the later one first.
    """
    first: dict[str, Delivery] = {}
    for delivery in sorted(deliveries, key=lambda d: d.t_start):
        if delivery.outcome == "ok" and delivery.id not in first:
            first[delivery.id] = delivery
    groups: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in first.values():
        groups[str(delivery.group)].append(delivery)
    index = _Ledgers.build(ledger)
    sidecar: list[str] = []
    server: list[str] = []
    for group, items in groups.items():
        items.sort(key=lambda d: d.t_start)
        for i, later in enumerate(items):
            skipped = [e for e in items[i + 1 :] if (e.seq or 0) < (later.seq or 0)]
            if not skipped:
                continue
            receive = index.receive_before(later.id, later.incarnation, later.t_start)
            ids = [mid for mid, _ in receive.items] if receive else []
            together = [e for e in skipped if e.id in ids and ids.index(e.id) < ids.index(later.id)]
            jumped = together or skipped
            text = f"group {group}: seq {later.seq} delivered before seq {[e.seq for e in jumped]}"
            (sidecar if together else server).append(text)
    return sidecar, server
