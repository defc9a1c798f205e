"""The CloudEvents Python SDK as an independent consumer of what the sidecar sends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat


def read_event(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    """Decode one HTTP request (binary or structured mode) the way a CloudEvents receiver does."""
    return from_http(HTTPMessage(headers=dict(headers), body=body), JSONFormat())


def attributes(event: BaseCloudEvent) -> dict[str, Any]:
    return dict(event.get_attributes())
