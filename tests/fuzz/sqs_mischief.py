"""Ways an SQS-compatible endpoint misbehaves, as answers the proxy gives instead of the server's.

Some never reach the server (it did nothing); ``truncated`` and ``lost_answer`` reach it and
then spoil the answer (the server did the work, the client cannot know): the harder case, as a
receive whose answer is lost leaves its messages invisible until their visibility expires.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web

from tests.support.sqs_proxy import SqsProxy

JSON = "application/x-amz-json-1.0"


def _json(status: int, doc: object, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(doc).encode(), content_type=JSON, headers=headers
    )


async def http_500(_r: web.Request, _a: str, _p: SqsProxy) -> web.StreamResponse:
    return web.Response(status=500, body=b"<html><body>Internal Server Error</body></html>")


async def empty_502(_r: web.Request, _a: str, _p: SqsProxy) -> web.StreamResponse:
    return web.Response(status=502)


async def throttling(_r: web.Request, _a: str, _p: SqsProxy) -> web.StreamResponse:
    doc = {"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}
    return _json(400, doc, **{"x-amzn-query-error": "ThrottlingException;Sender"})


async def slow_down(_r: web.Request, _a: str, _p: SqsProxy) -> web.StreamResponse:
    return _json(503, {"__type": "SlowDown", "message": "Please reduce your request rate."})


async def garbage_200(_r: web.Request, _a: str, _p: SqsProxy) -> web.StreamResponse:
    return web.Response(status=200, body=b"\x00\xff<not json>{", content_type=JSON)


async def wrong_shape(_r: web.Request, action: str, _p: SqsProxy) -> web.StreamResponse:
    if action == "ReceiveMessage":
        return _json(200, {"Messages": [{"MessageId": "no-handle-no-body"}]})
    return _json(200, {"Successful": "everything", "Failed": None})


async def reset(request: web.Request, _a: str, _p: SqsProxy) -> web.StreamResponse:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


async def slow(request: web.Request, action: str, proxy: SqsProxy) -> web.StreamResponse:
    await asyncio.sleep(2.0)  # the misbehaviour itself: a slow server, then a true answer
    status, payload, content_type = await proxy.relay(request, action)
    return web.Response(status=status, body=payload, headers={"Content-Type": content_type})


async def truncated(request: web.Request, action: str, proxy: SqsProxy) -> web.StreamResponse:
    """The server acts; its answer announces its full length and stops halfway."""
    _status, payload, content_type = await proxy.relay(request, action)
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    response.content_length = len(payload) + 64
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.abort()
    return response


async def lost_answer(request: web.Request, action: str, proxy: SqsProxy) -> web.StreamResponse:
    """The server acts; the connection dies before a byte of the answer."""
    await proxy.relay(request, action)
    return await reset(request, action, proxy)


KINDS: dict[str, Callable[..., object]] = {
    "http_500": http_500,
    "empty_502": empty_502,
    "throttling": throttling,
    "slow_down": slow_down,
    "garbage_200": garbage_200,
    "reset": reset,
    "slow": slow,
    "truncated": truncated,
    "lost_answer": lost_answer,
}
