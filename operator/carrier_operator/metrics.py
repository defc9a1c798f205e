"""Prometheus metrics of the operator, on a registry of their own (docs/observability.md).

Per-binding series are not kept in labelled children that someone must remember to remove:
a custom collector renders them at scrape time from the leader's notebook (:class:`.statuses.StatusWriter`,
one :class:`.status.Observed` per binding), so a deleted binding's series vanish with its notes
and cardinality is the number of bindings. Only the leader reads queues: a replica that is not
the leader exports no per-binding series (and ``carrier_operator_leader 0``); the admission
and error counters are every replica's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import MUTATE_PODS_ID, VALIDATE_BINDINGS_ID
from .status import QUEUE_REACHABLE, READY, VALID, Observed

Key = tuple[str, str]  # (namespace, binding name)
Notes = Callable[[], Iterable[tuple[Key, Observed]]]

AdmissionResult = Literal["allowed", "denied", "invalid", "error"]
ADMISSION_RESULTS: Final[tuple[AdmissionResult, ...]] = get_args(AdmissionResult)
WEBHOOKS: Final = (MUTATE_PODS_ID, VALIDATE_BINDINGS_ID)
UNKNOWN_WEBHOOK: Final = "unknown"  # any other path: its name comes from the caller (unbounded)
CONDITIONS: Final = (READY, VALID, QUEUE_REACHABLE)
QUEUE_STATES: Final = ("visible", "in_flight", "delayed")
# Reasons the reconcile loop counts as errors (not the user's spec: that is the Valid condition).
ReconcileError = Literal["status_write", "rollout", "unexpected"]
RECONCILE_ERRORS: Final[tuple[ReconcileError, ...]] = get_args(ReconcileError)

# An admission review is answered in milliseconds; the API server gives up after 10 s at most.
ADMISSION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

disable_created_metrics()  # type: ignore[no-untyped-call]


class OperatorMetrics:
    """The operator's metrics; :meth:`watch` points the per-binding collector at the notebook."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        requests = Counter(
            "carrier_operator_admission_requests",
            "Admission reviews answered, by webhook and result.",
            ["webhook", "result"],
            registry=reg,
        )
        duration = Histogram(
            "carrier_operator_admission_duration_seconds",
            "Time to answer one admission review, by webhook and result.",
            ["webhook", "result"],
            registry=reg,
            buckets=ADMISSION_BUCKETS,
        )
        self._admission: dict[tuple[str, str], tuple[Counter, Histogram]] = {
            (w, r): (requests.labels(w, r), duration.labels(w, r))
            for w in (*WEBHOOKS, UNKNOWN_WEBHOOK)
            for r in ADMISSION_RESULTS
        }
        reconcile = Counter(
            "carrier_operator_reconcile_errors",
            "Reconcile steps that failed, by reason (status_write, rollout, unexpected).",
            ["reason"],
            registry=reg,
        )
        self._reconcile = {r: reconcile.labels(r) for r in RECONCILE_ERRORS}
        self._queue_errors = Counter(
            "carrier_operator_queue_check_errors",
            "Queue checks that could not read the queue (or its dead-letter queue), by reason.",
            ["reason"],
            registry=reg,
        )
        self._bindings = _BindingCollector()
        reg.register(self._bindings)

    def watch(self, notes: Notes, is_leader: Callable[[], bool]) -> None:
        """Render per-binding series from ``notes()`` while ``is_leader()``."""
        self._bindings.notes = notes
        self._bindings.is_leader = is_leader

    # --- recording ----------------------------------------------------------------------------
    def admission_reviewed(self, webhook: str, result: str, seconds: float) -> None:
        """``webhook``: a handler id (others count as unknown); ``result``: an AdmissionResult."""
        if result not in ADMISSION_RESULTS:
            result = "error"
        pair = self._admission.get((webhook, result)) or self._admission[(UNKNOWN_WEBHOOK, result)]
        counter, histogram = pair
        counter.inc()
        histogram.observe(seconds)

    def reconcile_error(self, reason: ReconcileError) -> None:
        self._reconcile[reason].inc()

    def queue_check_error(self, reason: str) -> None:
        """``reason``: a probe's or a dead-letter read's CamelCase reason (a bounded set)."""
        self._queue_errors.labels(reason).inc()

    def schedule_sent(self, namespace: str, binding: str, schedule: str, outcome: str) -> None:
        """One scheduled send (the scheduler calls this), counted until the binding is gone."""
        self._bindings.count_send((namespace, binding), schedule, outcome)

    def forget(self, key: Key) -> None:
        """The binding was deleted: drop what is counted for it alone (its schedule sends)."""
        self._bindings.forget(key)


class _BindingCollector(Collector):
    """Per-binding series, rendered at scrape time from the leader's current notes."""

    def __init__(self) -> None:
        self.notes: Notes = lambda: ()
        self.is_leader: Callable[[], bool] = lambda: False
        self._sends: dict[Key, dict[tuple[str, str], float]] = {}
        self._lock = threading.Lock()  # scrapes may run in another thread than the loop

    def count_send(self, key: Key, schedule: str, outcome: str) -> None:
        with self._lock:
            counts = self._sends.setdefault(key, {})
            counts[(schedule, outcome)] = counts.get((schedule, outcome), 0.0) + 1.0

    def forget(self, key: Key) -> None:
        with self._lock:
            self._sends.pop(key, None)

    def describe(self) -> Iterable[Metric]:
        return _Families().all()

    def collect(self) -> Iterator[Metric]:
        leader = bool(self.is_leader())
        out = _Families()
        out.leader.add_metric([], 1.0 if leader else 0.0)
        if leader:
            for (namespace, name), obs in sorted(self.notes(), key=lambda item: item[0]):
                out.add_binding([namespace, name], obs)
            with self._lock:
                for (namespace, name), counts in sorted(self._sends.items()):
                    for (schedule, outcome), value in sorted(counts.items()):
                        out.sends.add_metric([namespace, name, schedule, outcome], value)
        yield from out.all()


PER_BINDING: Final = ["namespace", "binding"]


@dataclass
class _Families:
    """One scrape's per-binding families (fresh each time: nothing to remove)."""

    leader: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "carrier_operator_leader",
            "1 while this replica is the leader (the one that reads queues and writes status).",
        )
    )
    depth: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "carrier_operator_queue_messages",
            "Approximate messages in the binding's queue at the last check, by state.",
            labels=[*PER_BINDING, "state"],
        )
    )
    dead_letters: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "carrier_operator_dead_letter_messages",
            "Messages in the binding's dead-letter queue at the last check.",
            labels=PER_BINDING,
        )
    )
    condition: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "carrier_operator_binding_condition",
            "1 if the binding's condition (Ready, Valid, QueueReachable) is True, else 0.",
            labels=[*PER_BINDING, "condition"],
        )
    )
    checked: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "carrier_operator_queue_last_check_timestamp_seconds",
            "Unix time of the binding's last queue check.",
            labels=PER_BINDING,
        )
    )
    success: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "carrier_operator_queue_last_check_success",
            "1 if the last queue check read the queue, else 0; reason says why not.",
            labels=[*PER_BINDING, "reason"],
        )
    )
    sends: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "carrier_operator_schedule_sends",
            "Messages sent on a binding's schedule, by schedule and outcome.",
            labels=[*PER_BINDING, "schedule", "outcome"],
        )
    )

    def all(self) -> list[Metric]:
        return [getattr(self, f.name) for f in fields(self)]

    def add_binding(self, per: list[str], obs: Observed) -> None:
        statuses = {c.get("type"): c.get("status") for c in obs.conditions}
        for kind in CONDITIONS:
            if kind in statuses:
                self.condition.add_metric([*per, kind], 1.0 if statuses[kind] == "True" else 0.0)
        probe = obs.probe
        if probe is None:
            return
        if obs.checked_at is not None:
            self.checked.add_metric(per, _unix(obs.checked_at))
        self.success.add_metric([*per, probe.reason], 1.0 if probe.reachable else 0.0)
        if probe.reachable:
            counts = (probe.visible, probe.in_flight, probe.delayed)
            for state, count in zip(QUEUE_STATES, counts, strict=True):
                self.depth.add_metric([*per, state], float(count or 0))
        if probe.dead_letter is not None and probe.dead_letter.messages is not None:
            self.dead_letters.add_metric(per, float(probe.dead_letter.messages))


def _unix(iso: str) -> float:
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
