"""Reading a queue's state the way every suite checks "nothing lost, nothing stuck"."""

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
