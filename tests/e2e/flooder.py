"""The e2e suite's probe flood: waves of concurrent GETs at a sidecar's probe port, from a pod.

Runs inside the cluster from the sidecar image (aiohttp is there). ``flooder.py BASE SECONDS
CONCURRENCY``: one wave of CONCURRENCY GETs a second (half ``/metrics``, half ``/healthz``, a
connection each) for SECONDS, then one JSON line: the count of each status (or error) seen.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

import aiohttp


async def flood(base: str, seconds: float, concurrency: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(path: str) -> None:
            try:
                async with session.get(base + path) as answer:
                    await answer.read()
                    key = str(answer.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                key = type(exc).__name__
            seen[key] = seen.get(key, 0) + 1

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            paths = ["/metrics" if i % 2 else "/healthz" for i in range(concurrency)]
            await asyncio.gather(*(one(path) for path in paths))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return seen


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a wave's sockets: past 1 024
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    base, seconds, concurrency = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(flood(base, seconds, concurrency))), flush=True)


if __name__ == "__main__":
    main()
