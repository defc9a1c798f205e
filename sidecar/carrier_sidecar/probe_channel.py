"""The wire between the sidecar and its probe process: length-prefixed frames on a socketpair.

A frame is a JSON head, a newline, and a body (a ``/metrics`` rendering; empty otherwise). Three
kinds: the sidecar's state (``s``, every :data:`STATE_EVERY` seconds), a request the probe
process cannot answer itself (``q``: ``/metrics``, ``/drain``) and the answer to one (``a``).
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping
from typing import Any, Final

from .probe_checks import Outcome
from .probe_http import Answer, Request

STATE_EVERY: Final = 0.25  # seconds between state frames: /readyz follows within this
MAX_FRAME: Final = 64 * 1024 * 1024  # a /metrics rendering is kilobytes; anything near is a bug
_SIZE: Final = struct.Struct(">I")

Frame = tuple[dict[str, Any], bytes]


def encode(head: Mapping[str, object], body: bytes = b"") -> bytes:
    data = json.dumps(head, separators=(",", ":")).encode() + b"\n" + body
    return _SIZE.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """The next frame, or None once the other end has closed (or sent something broken)."""
    try:
        (size,) = _SIZE.unpack(await reader.readexactly(_SIZE.size))
        if size > MAX_FRAME:
            return None
        data = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    head, _, body = data.partition(b"\n")
    return json.loads(head), body


def state_frame(live: Outcome, ready: Outcome) -> bytes:
    return encode({"k": "s", "live": live[:2], "ready": ready[:2]})  # (ok, reason)


def request_frame(ident: int, request: Request) -> bytes:
    return encode(
        {
            "k": "q",
            "id": ident,
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers),
            "remote": request.remote,
        }
    )


def request_of(head: Mapping[str, Any]) -> Request:
    return Request(head["method"], head["path"], head["headers"], head["remote"])


def answer_frame(ident: int, answer: Answer) -> bytes:
    head = {
        "k": "a",
        "id": ident,
        "status": answer.status,
        "content_type": answer.content_type,
        "headers": answer.headers,
    }
    return encode(head, answer.body)


def answer_of(head: Mapping[str, Any], body: bytes) -> Answer:
    headers = tuple((str(name), str(value)) for name, value in head["headers"])
    return Answer(int(head["status"]), body, str(head["content_type"]), headers)
