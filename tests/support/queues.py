"""Arranging a queue, and reading its state the way every suite checks "nothing lost, nothing
stuck"."""

from __future__ import annotations

from typing import Any

COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


async def queue_counts(client: Any, url: str) -> dict[str, int]:
    """Visible, in-flight and delayed counts, by attribute name (an aiobotocore SQS client)."""
    answer = await client.get_queue_attributes(QueueUrl=url, AttributeNames=list(COUNTS))
    return {name: int(answer["Attributes"].get(name, 0)) for name in COUNTS}


async def make_queue(sqs: Any, name: str, **attributes: str) -> str:
    attrs = {"VisibilityTimeout": "30", **attributes}
    if name.endswith(".fifo"):
        attrs.setdefault("FifoQueue", "true")
    created = await sqs.create_queue(QueueName=name, Attributes=attrs)
    return str(created["QueueUrl"])


async def depth(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) as the queue reports them."""
    counts = await queue_counts(sqs, url)
    return counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]


async def drained(sqs: Any, url: str) -> bool:
    return await depth(sqs, url) == (0, 0)
