"""What the delivery flow reports, as a Protocol: ``metrics.Metrics`` fits it, and so does a test stub."""

from __future__ import annotations

from typing import Literal, Protocol

from .aws import ErrorClass
from .outcome import OutcomeKind

# The metrics' label values, declared once: ``metrics.Metrics`` binds its series from these.
DeliveryOutcome = OutcomeKind
VisibilityReason = Literal["retry_after", "backoff", "heartbeat", "release"]
SqsOutcome = Literal["ok", "error"]
SqsErrorKind = ErrorClass  # the classes of carrier_sidecar.aws, one list


class MetricsPort(Protocol):
    def received(self, count: int) -> None: ...
    def queue_wait(self, seconds: float) -> None: ...
    def delivered(self, outcome: DeliveryOutcome, seconds: float) -> None: ...
    def deleted(self, count: int) -> None: ...
    def visibility_changed(self, count: int, reason: VisibilityReason) -> None: ...
    def sqs_request(self, action: str, outcome: SqsOutcome) -> None: ...
    def in_flight(self, delta: int) -> None: ...
    def unrouted_task(self) -> None: ...
    def sqs_error(self, kind: SqsErrorKind) -> None: ...


class NoMetrics:
    """Counts nothing: for pure unit tests of the flow."""

    def received(self, count: int) -> None:
        pass

    def queue_wait(self, seconds: float) -> None:
        pass

    def delivered(self, outcome: DeliveryOutcome, seconds: float) -> None:
        pass

    def deleted(self, count: int) -> None:
        pass

    def visibility_changed(self, count: int, reason: VisibilityReason) -> None:
        pass

    def sqs_request(self, action: str, outcome: SqsOutcome) -> None:
        pass

    def in_flight(self, delta: int) -> None:
        pass

    def unrouted_task(self) -> None:
        pass

    def sqs_error(self, kind: SqsErrorKind) -> None:
        pass
