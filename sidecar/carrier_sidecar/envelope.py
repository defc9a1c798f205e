"""How one SQS message becomes one HTTP request: its URL, headers and body (pure).

The URL is ``CARRIER_WEBHOOK_ENDPOINT``, or a listed task's path on its origin (``tasks``);
the headers are Carrier's (``headers``), plus the task's and, in ``cloudevents`` format, the
binary-mode ``ce-*`` ones (``cloudevents``). A message naming an unlisted task has no request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yarl import URL

from .cloudevents import binary_headers, is_structured
from .headers import build_headers
from .settings import Settings
from .tasks import Routed, TaskRouter


@dataclass(frozen=True, slots=True)
class Request:
    url: URL
    headers: dict[str, str]
    body: bytes


class Envelope:
    def __init__(self, settings: Settings, source: str) -> None:
        self._url = URL(settings.webhook_endpoint, encoded=True)  # exactly as configured
        self._content_type = settings.webhook_default_content_type
        self._router = TaskRouter(settings.webhook_endpoint, settings.task_routes)
        self._cloudevents = settings.webhook_format == "cloudevents"
        self._source = source

    def unrouted_task(self, message: dict[str, Any]) -> str | None:
        """The name of the unlisted task the message names, or None (deliverable)."""
        decision = self._router.route(message)
        return decision if isinstance(decision, str) else None

    def build(self, message: dict[str, Any]) -> Request | None:
        """The request for ``message``; None if it names a task that is not listed."""
        decision = self._router.route(message)
        if isinstance(decision, str):
            return None
        headers = build_headers(message, self._content_type)
        url = self._url
        if isinstance(decision, Routed):
            url = decision.url
            headers.update(decision.headers)
        if self._cloudevents and not is_structured(headers["Content-Type"]):
            headers.update(binary_headers(message, self._source))
        body = str(message.get("Body", "")).encode("utf-8")
        return Request(url, headers, body)
