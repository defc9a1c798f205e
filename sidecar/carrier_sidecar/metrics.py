"""Prometheus metrics of the sidecar, on a registry of their own.

Every recording method runs on the per-message hot path, so each labelled child is bound once at
construction and a call is one dict lookup at most plus prometheus_client's own locked add.
A private :class:`CollectorRegistry` (never the global one) keeps several instances, and tests,
from colliding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics_core import Metric

from .metrics_port import DeliveryOutcome, SqsErrorKind, SqsOutcome, VisibilityReason

DELIVERY_OUTCOMES: Final[tuple[DeliveryOutcome, ...]] = get_args(DeliveryOutcome)
VISIBILITY_REASONS: Final[tuple[VisibilityReason, ...]] = get_args(VisibilityReason)
SQS_OUTCOMES: Final[tuple[SqsOutcome, ...]] = get_args(SqsOutcome)
SQS_ERROR_KINDS: Final[tuple[SqsErrorKind, ...]] = get_args(SqsErrorKind)
# Bound up front so their series exist (at 0) from the first scrape; others bind on first use.
SQS_ACTIONS: Final = (
    "GetQueueUrl",
    "GetQueueAttributes",
    "ReceiveMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibilityBatch",
)

# A webhook answers in milliseconds to the request timeout (60s by default, up to 12h).
DELIVERY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
# A message may wait in the queue from milliseconds up to its 14-day retention.
QUEUE_WAIT_BUCKETS: Final = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
    86400.0, 345600.0, 1209600.0,
)  # fmt: skip

# ``*_created`` series double the exposition for no operational value; this process owns its
# prometheus_client, so switching them off globally is harmless.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The sidecar's counters, gauges and histograms; see docs/observability.md."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)

        self._received = Counter(
            "carrier_messages_received",
            "Messages received from SQS.",
            registry=reg,
        )
        self._queue_wait = Histogram(
            "carrier_queue_wait_seconds",
            "Time from SentTimestamp to receipt by this sidecar.",
            registry=reg,
            buckets=QUEUE_WAIT_BUCKETS,
        )
        deliveries = Counter(
            "carrier_deliveries",
            "Webhook deliveries finished, by outcome.",
            ["outcome"],
            registry=reg,
        )
        duration = Histogram(
            "carrier_delivery_duration_seconds",
            "Duration of one webhook POST, by outcome.",
            ["outcome"],
            registry=reg,
            buckets=DELIVERY_BUCKETS,
        )
        self._deliveries = {o: deliveries.labels(o) for o in DELIVERY_OUTCOMES}
        self._duration = {o: duration.labels(o) for o in DELIVERY_OUTCOMES}
        self._deleted = Counter(
            "carrier_messages_deleted",
            "Messages deleted from SQS after a successful delivery.",
            registry=reg,
        )
        visibility = Counter(
            "carrier_visibility_changes",
            "Message visibility changes, by reason.",
            ["reason"],
            registry=reg,
        )
        self._visibility = {r: visibility.labels(r) for r in VISIBILITY_REASONS}
        self._sqs_family = Counter(
            "carrier_sqs_requests",
            "SQS API requests, by action and outcome.",
            ["action", "outcome"],
            registry=reg,
        )
        self._sqs: dict[SqsOutcome, dict[str, Counter]] = {o: {} for o in SQS_OUTCOMES}
        for action in SQS_ACTIONS:
            for outcome in SQS_OUTCOMES:
                self._sqs_child(action, outcome)
        errors = Counter(
            "carrier_sqs_errors",
            "Failed SQS calls, by kind of error (missing, denied, credentials: retrying "
            "alone will not fix them).",
            ["kind"],
            registry=reg,
        )
        self._sqs_errors = {k: errors.labels(k) for k in SQS_ERROR_KINDS}
        self._in_flight = Gauge(
            "carrier_in_flight_messages",
            "Webhook deliveries (POSTs) in progress.",
            registry=reg,
        )
        # No task-name label: the names come from whoever can send to the queue (unbounded).
        self._unrouted = Counter(
            "carrier_unrouted_tasks",
            "Messages naming a task CARRIER_WEBHOOK_TASKS does not list (POSTed nowhere).",
            registry=reg,
        )
        self._snapshotted: tuple[Counter | Gauge, ...] = (
            self._received,
            deliveries,
            self._deleted,
            visibility,
            self._sqs_family,
            self._in_flight,
            self._unrouted,
        )

    # --- recording (hot path) ----------------------------------------------------------------
    def received(self, count: int) -> None:
        self._received.inc(count)

    def queue_wait(self, seconds: float) -> None:
        """``now - SentTimestamp``; clock skew between SQS and this host is clamped to 0."""
        self._queue_wait.observe(seconds if seconds > 0.0 else 0.0)

    def delivered(self, outcome: DeliveryOutcome, seconds: float) -> None:
        self._deliveries[outcome].inc()
        self._duration[outcome].observe(seconds)

    def deleted(self, count: int) -> None:
        self._deleted.inc(count)

    def visibility_changed(self, count: int, reason: VisibilityReason) -> None:
        self._visibility[reason].inc(count)

    def sqs_request(self, action: str, outcome: SqsOutcome) -> None:
        child = self._sqs[outcome].get(action)
        if child is None:
            child = self._sqs_child(action, outcome)
        child.inc()

    def in_flight(self, delta: int) -> None:
        self._in_flight.inc(delta)

    def unrouted_task(self) -> None:
        self._unrouted.inc()

    def sqs_error(self, kind: SqsErrorKind) -> None:
        self._sqs_errors[kind].inc()

    def _sqs_child(self, action: str, outcome: SqsOutcome) -> Counter:
        child = self._sqs_family.labels(action, outcome)
        self._sqs[outcome][action] = child
        return child

    # --- reading (stat log) -------------------------------------------------------------------
    def snapshot(self) -> dict[str, float]:
        """The counters and the in-flight gauge as flat ``name: value`` pairs for a log line.

        Keys drop the ``carrier_`` prefix and ``_total`` suffix and append the label values:
        ``deliveries_success``, ``visibility_changes_heartbeat``, ``sqs_requests_error``
        (SQS requests are summed over actions).
        """
        out: dict[str, float] = {}
        for family in self._families():
            short = family.name.removeprefix("carrier_")
            for sample in family.samples:
                if family.type == "counter" and sample.name.endswith("_total"):
                    labels = sample.labels
                    if family.name == "carrier_sqs_requests":
                        key = f"{short}_{labels['outcome']}"
                    else:
                        key = "_".join([short, *labels.values()])
                    out[key] = out.get(key, 0.0) + sample.value
                elif family.type == "gauge":
                    out[short] = sample.value
        return out

    def _families(self) -> Iterator[Metric]:
        # Only our own metrics: the process collector's /proc reads are for scrapes, not this.
        for metric in self._snapshotted:
            yield from metric.collect()
