"""CloudEvents 1.0 over HTTP, binary content mode: the ``ce-*`` headers of one message (pure).

The event's attributes come from the message (see README, "CloudEvents"): ``id`` is the SQS
message id, ``source`` the queue's ARN (its URL where no ARN is known), ``type`` and ``subject``
the ``ce-type`` / ``ce-subject`` message attributes, ``time`` its SentTimestamp, and
``datacontenttype`` the ``Content-Type`` that raw mode sends too. Message attributes whose names
are valid extension names (``[a-z0-9]{1,20}``, not a context attribute's) become extensions, as
do ``ce-<name>`` attributes (which win over a plain ``<name>``). Every attribute also keeps its
``X-Carrier-Attr-*`` header, so switching modes loses nothing. A body that already is a
structured-mode event (``application/cloudevents+…``) is passed through unchanged.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .aws import queue_arn
from .tasks import rfc3339

SPECVERSION = "1.0"
DEFAULT_TYPE = "com.amazonaws.sqs.message"
STRUCTURED_PREFIX = "application/cloudevents+"
CE_ATTR_PREFIX = "ce-"
# Context attributes of CloudEvents 1.0 (and ``data``, which the spec reserves): an extension of
# one of these names would clash with the event's own.
CONTEXT_ATTRIBUTES = frozenset(
    {"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time"}
)
RESERVED = CONTEXT_ATTRIBUTES | {"data"}
# Context attributes a message may set through a ``ce-<name>`` attribute; the others (id,
# source, time, specversion, datacontenttype) are the queue's facts and are not overridable.
SETTABLE = ("type", "subject", "dataschema")
# The spec: lower-case a-z and 0-9, SHOULD NOT exceed 20 characters (taken here as a limit).
EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
# The HTTP binding (3.1.3.2): printable ASCII except space, '"' and '%' goes as is.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')


def event_source(queue_url: str | None, region: str | None, fallback: str) -> str:
    """The queue's ARN, else its URL, else ``fallback`` (the queue as configured)."""
    return queue_arn(queue_url, region) or queue_url or fallback


def is_structured(content_type: str) -> bool:
    """A body in structured content mode (``application/cloudevents+json`` and its kin)."""
    return content_type.strip().lower().startswith(STRUCTURED_PREFIX)


def encode(value: str) -> str:
    """Percent-encode per the CloudEvents HTTP binding (UTF-8 bytes of anything unsafe)."""
    return quote(value.encode("utf-8"), safe=_SAFE)


def binary_headers(message: Mapping[str, Any], source: str) -> dict[str, str]:
    """The ``ce-*`` headers of one SQS message (``Content-Type`` is the caller's)."""
    values = attribute_values(message)
    headers = {
        "ce-specversion": SPECVERSION,
        "ce-id": encode(str(message.get("MessageId", ""))),
        "ce-source": encode(source),
        "ce-type": encode(values.pop("type", "") or DEFAULT_TYPE),
    }
    sent = (message.get("Attributes") or {}).get("SentTimestamp")
    if isinstance(sent, str) and sent.isascii() and sent.isdigit() and len(sent) < 16:
        headers["ce-time"] = rfc3339(datetime.fromtimestamp(int(sent) / 1000, UTC))
    for name, value in values.items():
        headers[CE_ATTR_PREFIX + name] = encode(value)
    return headers


def attribute_values(message: Mapping[str, Any]) -> dict[str, str]:
    """CloudEvents attribute name → value for the message attributes that map to one."""
    plain: dict[str, str] = {}
    prefixed: dict[str, str] = {}
    for name, attr in (message.get("MessageAttributes") or {}).items():
        value = _text(attr)
        if not value:
            continue  # CloudEvents attributes are never empty
        if name.startswith(CE_ATTR_PREFIX):
            target = name[len(CE_ATTR_PREFIX) :]
            if target in SETTABLE or _is_extension(target):
                prefixed[target] = value
        elif _is_extension(name):
            plain[name] = value
    return {**plain, **prefixed}


def _is_extension(name: str) -> bool:
    return EXTENSION_NAME.fullmatch(name) is not None and name not in RESERVED


def _text(attr: Mapping[str, Any]) -> str | None:
    """String and Number values as they are; Binary as base64 (CloudEvents' Binary form)."""
    data_type = str(attr.get("DataType", ""))
    if data_type.startswith(("String", "Number")):
        value = attr.get("StringValue")
        return value if isinstance(value, str) else None
    if data_type.startswith("Binary"):
        blob = attr.get("BinaryValue")
        return base64.b64encode(blob).decode("ascii") if isinstance(blob, bytes) else None
    return None
