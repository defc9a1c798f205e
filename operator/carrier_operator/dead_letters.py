"""A binding's dead-letter queue: read from the queue's ``RedrivePolicy``, shown in status,
and a rate-limited Warning Event when its depth rises.

Failed messages end in the dead-letter queue (DLQ) after ``maxReceiveCount`` receives, so its
depth is the count of messages the worker could not handle: the number a person wants to see
next to the queue's own depth. Reading it needs ``sqs:GetQueueAttributes`` on the DLQ too; a
denied or failed DLQ read is shown in ``status.deadLetter`` and never makes the binding
unready (the source queue decides ``QueueReachable``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore import exceptions as boto

from carrier_sidecar.aws import classify_code, error_code, error_message, queue_url_from_arn

REDRIVE_POLICY = "RedrivePolicy"
EVENT_WINDOW = 600.0  # seconds: at most one DeadLettersRising Event per binding per window

# ``status.deadLetter.reason`` values.
READ = "DeadLetterQueueRead"
NO_POLICY = "NoRedrivePolicy"
DENIED = "DeadLetterAccessDenied"
MISSING = "DeadLetterQueueNotFound"
FAILED = "DeadLetterQueueError"
NO_POLICY_MESSAGE = (
    "the queue has no redrive policy: a message the worker keeps failing is received again "
    "until its retention period ends, then lost; set one (a dead-letter queue and "
    "maxReceiveCount) so failed messages are kept and counted here"
)


@dataclass(frozen=True)
class DeadLetter:
    """What the operator knows of a queue's DLQ: its policy and depth, or why not."""

    reason: str
    message: str
    arn: str | None = None
    max_receive_count: int | None = None
    messages: int | None = None  # visible + in flight + delayed, when read

    def status(self) -> dict[str, Any]:
        """``status.deadLetter`` (unknown keys left out)."""
        out: dict[str, Any] = {"reason": self.reason, "message": self.message}
        optional = {
            "arn": self.arn,
            "maxReceiveCount": self.max_receive_count,
            "messages": self.messages,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        return out


def parse_policy(raw: str | None) -> tuple[str, int | None] | None:
    """``(deadLetterTargetArn, maxReceiveCount)`` of a RedrivePolicy attribute, or None."""
    if not raw:
        return None
    try:
        policy = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(policy, Mapping) or not isinstance(policy.get("deadLetterTargetArn"), str):
        return None
    raw_count = policy.get("maxReceiveCount")  # a string or a number, as SQS returns it
    try:
        count = int(raw_count) if isinstance(raw_count, int | str) else None
    except ValueError:
        count = None
    return str(policy["deadLetterTargetArn"]), count


async def read_dead_letter(
    client: Any, queue_url: str, raw_policy: str | None, depth_attributes: Sequence[str]
) -> DeadLetter:
    """The DLQ named by ``raw_policy`` (the source queue's RedrivePolicy), read with ``client``
    (the source queue's: a DLQ is in the same region); its depth is the sum of
    ``depth_attributes``. API refusals become a :class:`DeadLetter` with a reason; timeouts
    and network errors are left to the caller's probe (the same endpoint serves both)."""
    policy = parse_policy(raw_policy)
    if policy is None:
        return DeadLetter(NO_POLICY, NO_POLICY_MESSAGE)
    arn, count = policy
    url = queue_url_from_arn(arn, queue_url)
    if url is None:
        return DeadLetter(FAILED, f"the redrive policy names {arn!r}, not an SQS queue ARN", arn)
    try:
        answer = await client.get_queue_attributes(
            QueueUrl=url, AttributeNames=list(depth_attributes)
        )
    except boto.ClientError as exc:
        return _unreadable(exc, arn, count)
    attrs = answer.get("Attributes", {})
    depth = sum(int(attrs.get(name, 0)) for name in depth_attributes)
    return DeadLetter(
        READ,
        f"{depth} message(s) in the dead-letter queue (after {count} receives)"
        if count is not None
        else f"{depth} message(s) in the dead-letter queue",
        arn,
        count,
        depth,
    )


def _unreadable(exc: boto.ClientError, arn: str, count: int | None) -> DeadLetter:
    code = error_code(exc) or "Unknown"
    text = error_message(exc) or code
    kind = classify_code(code)
    if kind in {"denied", "credentials"}:
        return DeadLetter(
            DENIED,
            f"the operator's AWS identity may not call sqs:GetQueueAttributes on the "
            f"dead-letter queue {arn}: {text} (the binding stays Ready)",
            arn,
            count,
        )
    if kind == "missing":
        return DeadLetter(
            MISSING, f"the redrive policy names {arn}, which does not exist", arn, count
        )
    return DeadLetter(FAILED, f"{code} reading the dead-letter queue {arn}: {text}", arn, count)


Key = tuple[str, str]


class RiseWatch:
    """Decides when a DLQ's depth rose enough to say so: at most one Event per binding per
    ``window`` seconds. Depths start from the status written before (a restart or a new leader
    does not announce old messages again)."""

    def __init__(
        self, window: float = EVENT_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._depth: dict[Key, int] = {}
        self._posted: dict[Key, float] = {}

    def rose(self, key: Key, depth: int, status: Mapping[str, Any] | None = None) -> int | None:
        """Note ``depth``; the depth it rose from if an Event is due now, else None."""
        before = self._depth.get(key)
        if before is None:
            before = _status_depth(status)
        if depth <= before:
            self._depth[key] = depth  # drained or redriven: rises are counted from here
            return None
        now = self._clock()
        last = self._posted.get(key)
        if last is not None and now - last < self.window:
            self._depth[key] = before  # announced later, from the depth last announced
            return None
        self._depth[key] = depth
        self._posted[key] = now
        return before

    def forget(self, key: Key) -> None:
        self._depth.pop(key, None)
        self._posted.pop(key, None)

    def clear(self) -> None:
        self._depth.clear()
        self._posted.clear()


def _status_depth(status: Mapping[str, Any] | None) -> int:
    found = ((status or {}).get("deadLetter") or {}).get("messages")
    return found if isinstance(found, int) else 0
