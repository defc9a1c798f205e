"""Where a binding's queue is: its region, and the words that say so in a message."""

from __future__ import annotations

from carrier_sidecar.aws import region_from_url
from carrier_sidecar.settings import Settings


def region_for(settings: Settings) -> str | None:
    """The spec's region, else the one in an AWS queue URL; None leaves it to the AWS chain."""
    if settings.sqs_region:
        return settings.sqs_region
    return region_from_url(settings.sqs_queue_url) or region_from_url(settings.sqs_endpoint)


def where(settings: Settings) -> str:
    """`` (region r, endpoint e)`` for messages about the queue, or empty."""
    parts = []
    region = region_for(settings)
    if region:
        parts.append(f"region {region}")
    if settings.sqs_endpoint:
        parts.append(f"endpoint {settings.sqs_endpoint}")
    return f" ({', '.join(parts)})" if parts else ""
