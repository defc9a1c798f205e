"""A sample worker: an aiohttp app that prints every message the sidecar POSTs to it.

python examples/worker.py --port 9000
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import unquote

from aiohttp import web


def _decode(value: str) -> str:
    """Carrier sends attribute values that are not plain header text as UTF-8''<percent-encoded>."""
    return unquote(value[7:]) if value.startswith("UTF-8''") else value


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    carrier = {
        name: _decode(value)
        for name, value in request.headers.items()
        if name.lower().startswith("x-carrier-")
    }
    print(
        f"worker: {request.method} {request.path_qs} "
        f"[{request.headers.get('Content-Type')}] {body.decode('utf-8', 'replace')}\n"
        f"        {carrier}",
        flush=True,
    )
    return web.Response(status=200, text="ok")


async def health(_request: web.Request) -> web.Response:
    return web.Response(status=200, text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/healthz", health)
    app.router.add_post("/{tail:.*}", handle)
    print(f"worker: listening on http://{args.host}:{args.port}", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    sys.exit(main())
