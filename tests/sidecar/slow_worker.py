"""A worker process as a pod runs one, for the shutdown-order tests (``python -m ...``).

aiohttp on loopback; every POST takes ``--delay`` seconds and is answered 200. On SIGTERM it
shuts down slowly, as real workers do: for ``--linger`` seconds it still listens but answers
503 to anything new (a sidecar still delivering would see failures), then finishes what was in
flight and exits 0. One JSON line per event on stdout, which the test reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from aiohttp import web

RECEIVE_COUNT = "X-Carrier-Receive-Count"


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def serve(port: int, delay: float, linger: float) -> None:
    stopping = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        count = request.headers.get(RECEIVE_COUNT)
        if stopping.is_set():
            emit("refused", body=body, receive_count=count)
            return web.Response(status=503, text="shutting down")
        emit("start", body=body, receive_count=count)
        await asyncio.sleep(delay)  # the work itself
        emit("done", body=body, receive_count=count)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=30)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    emit("listening", port=port)
    await stopping.wait()
    emit("sigterm")
    await asyncio.sleep(linger)  # the worker's own (slow) shutdown, still listening
    await runner.cleanup()
    emit("exit")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--linger", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay, args.linger))
    return 0


if __name__ == "__main__":
    sys.exit(main())
