"""The headers a worker sees with each message: pure, one dict per message.

Attribute values that are not plain header text (non-ASCII, control characters, leading or
trailing spaces) are sent RFC 8187-style: ``UTF-8''`` followed by the percent-encoded UTF-8
bytes. A value that itself starts with ``UTF-8''`` is always encoded, so decoding is one rule:
``if v.startswith("UTF-8''"): v = urllib.parse.unquote(v[7:])``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

RECEIVE_COUNT = "X-Carrier-Receive-Count"
FIRST_RECEIVE_TIME = "X-Carrier-First-Receive-Time"
MESSAGE_ID = "X-Carrier-Message-Id"
ATTR_PREFIX = "X-Carrier-Attr-"
CONTENT_TYPE_ATTR = "Body.ContentType"
ENCODED_PREFIX = "UTF-8''"

_PLAIN_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def encode_value(value: str) -> str:
    """Header-safe text for any string (see the module docstring)."""
    if value == "" or (_PLAIN_VALUE.fullmatch(value) and not value.startswith(ENCODED_PREFIX)):
        return value
    return ENCODED_PREFIX + quote(value.encode("utf-8"), safe="")


def build_headers(message: Mapping[str, Any], default_content_type: str) -> dict[str, str]:
    """Carrier's headers for one SQS message (as ReceiveMessage returns it)."""
    attributes: Mapping[str, str] = message.get("Attributes") or {}
    headers = {"Content-Type": default_content_type}
    count = attributes.get("ApproximateReceiveCount")
    if count is not None:
        headers[RECEIVE_COUNT] = count
    first = attributes.get("ApproximateFirstReceiveTimestamp")
    if first is not None and first.isascii() and first.isdigit():
        headers[FIRST_RECEIVE_TIME] = str(int(first) // 1000)  # SQS gives ms; Carrier documents s
    message_id = message.get("MessageId")
    if message_id:
        headers[MESSAGE_ID] = encode_value(message_id)
    for name, attr in (message.get("MessageAttributes") or {}).items():
        data_type: str = attr.get("DataType", "")
        value = attr.get("StringValue")
        if value is None or not data_type.startswith(("String", "Number")):
            continue  # Binary attributes have no header form
        if (
            name == CONTENT_TYPE_ATTR
            and data_type.startswith("String")
            and _PLAIN_VALUE.fullmatch(value)
        ):
            headers["Content-Type"] = value
        if _TOKEN.fullmatch(name):
            headers[ATTR_PREFIX + name] = encode_value(value)
    return headers
