"""Messages into a cluster queue, and the workers' records of them out of ``RECORDS``.

The e2e worker writes one record (id, pod, receive count) to the records queue per message it
handles; every kind suite sends ids and waits until each one is recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from .kube import poll
from .manifests import RECORDS


def send_ids(cluster_sqs: Any, queue: str, count: int, sleep: float = 0) -> set[str]:
    """``count`` messages with fresh ids (the worker sleeps ``sleep`` s on each), in batches."""
    url = cluster_sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    ids = [uuid.uuid4().hex for _ in range(count)]
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"id": m, "sleep": sleep})}
            for i, m in enumerate(ids[start : start + 10])
        ]
        assert not cluster_sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
    return set(ids)


def read_records(
    cluster_sqs: Any,
    ids: set[str],
    *,
    timeout: float,
    what: str,
    on_poll: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Read (and delete) records until every id in ``ids`` has one; returns every record read.
    The records queue is shared, so records of other ids are read and skipped. ``on_poll`` runs
    before each read (e.g. to sample a replica count meanwhile)."""
    records = cluster_sqs.get_queue_url(QueueName=RECORDS)["QueueUrl"]
    seen: set[str] = set()
    read: list[dict[str, Any]] = []

    def all_recorded() -> bool:
        if on_poll is not None:
            on_poll()
        answer = cluster_sqs.receive_message(
            QueueUrl=records, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in answer.get("Messages", []):
            record = json.loads(message["Body"])
            read.append(record)
            seen.add(record["id"])
            cluster_sqs.delete_message(QueueUrl=records, ReceiptHandle=message["ReceiptHandle"])
        return ids <= seen

    poll(all_recorded, timeout=timeout, what=what, every=0.2)
    return read
