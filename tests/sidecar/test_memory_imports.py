"""What the running sidecar does not load: a real process, idle on a real queue, dumps sys.modules.

No part of aiohttp's server is loaded: the probe server runs on :mod:`carrier_sidecar.probe_http`
(asyncio protocol + httptools), and aiohttp is only the webhook client. A regression here costs
start-up time and idle RSS in every pod.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.queues import make_queue
from tests.support.servers import MotoServer, eventually, free_port
from tests.support.sidecars import env_for, sidecar_process

# Runs the real entry point and writes the modules loaded by then when it exits (after SIGTERM).
WRAPPER = """
import atexit, json, os, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
from carrier_sidecar.__main__ import main
sys.exit(main())
"""
NOT_LOADED = (
    "aiohttp.web",
    "aiohttp.web_app",
    "aiohttp.web_urldispatcher",
    "aiohttp.web_fileresponse",
    "aiohttp.web_server",
    "aiohttp.web_protocol",
    "aiohttp.web_request",
    "aiohttp.web_response",
)


async def test_idle_sidecar_serves_probes_without_any_aiohttp_server_module(
    moto: MotoServer, sqs: Any, queue_name: str, tmp_path: Path
) -> None:
    await make_queue(sqs, queue_name)
    port = free_port()
    out = tmp_path / "modules.json"
    env = env_for(
        moto,
        queue_name,
        f"http://127.0.0.1:{free_port()}/hook",
        CARRIER_HTTP_ADDR=f"127.0.0.1:{port}",
        MODULES_OUT=str(out),
    )
    base = f"http://127.0.0.1:{port}"
    async with sidecar_process([sys.executable, "-c", WRAPPER], env) as sidecar:
        await eventually(lambda: sidecar.logged('"receiving"'), 30, "the sidecar to receive")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics") as metrics:
                assert metrics.status == 200
                assert "carrier_sqs_requests" in await metrics.text()
            async with http.head(f"{base}/healthz") as head:
                assert head.status == 200
            async with http.get(f"{base}/nowhere") as missing:
                assert missing.status == 404
            async with http.post(f"{base}/readyz") as posted:
                assert posted.status == 405
        sidecar.proc.send_signal(signal.SIGTERM)
        assert await sidecar.wait(20) == 0

    modules = set(json.loads(out.read_text()))
    assert {"aiobotocore.session", "carrier_sidecar.probe_http"} <= modules, "dumped after start-up"
    assert modules.isdisjoint(NOT_LOADED), sorted(modules & set(NOT_LOADED))
