"""What the running sidecar does not load: a real process, idle on a real queue, dumps what it holds.

No part of aiohttp's server is loaded: the probe server runs on :mod:`carrier_sidecar.probe_http`
(asyncio protocol + httptools), and aiohttp is only the webhook client. With plain-http SQS and
webhook endpoints no TLS context holds a parsed CA bundle (each costs ~36 ms of start-up CPU
and ~1 MB), and the caller's ``SSL_CERT_FILE`` is as it was. A regression here costs start-up
time and idle RSS in every pod.
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

# Runs the real entry point; on SIGUSR2 it writes what the running process holds, and the
# modules loaded by then when it exits (after SIGTERM).
WRAPPER = """
import atexit, gc, json, os, signal, ssl, sys
def held(*_):
    # SSL contexts are not tracked by the collector: find them among what tracked objects hold
    # (after unfreezing, since the settled start-up objects are hidden from get_objects).
    collector = gc.isenabled()
    gc.unfreeze()
    found = {}
    for holder in gc.get_objects():
        for o in gc.get_referents(holder):
            if isinstance(o, ssl.SSLContext):
                found[id(o)] = o
    contexts = list(found.values())
    seen = {
        "contexts": len(contexts),
        "ca_certificates": sum(c.cert_store_stats()["x509"] for c in contexts),
        "ssl_cert_file": os.environ.get("SSL_CERT_FILE"),
        "collector": collector,
    }
    open(os.environ["HELD_OUT"], "w").write(json.dumps(seen))
signal.signal(signal.SIGUSR2, held)
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
from carrier_sidecar.__main__ import main
sys.exit(main())
"""
CALLERS_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"  # restored, not necessarily present
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


async def test_idle_sidecar_serves_probes_without_aiohttp_server_or_parsed_ca_bundle(
    moto: MotoServer, sqs: Any, queue_name: str, tmp_path: Path
) -> None:
    await make_queue(sqs, queue_name)
    port = free_port()
    out = tmp_path / "modules.json"
    held_out = tmp_path / "held.json"
    env = env_for(
        moto,
        queue_name,
        f"http://127.0.0.1:{free_port()}/hook",
        CARRIER_HTTP_ADDR=f"127.0.0.1:{port}",
        MODULES_OUT=str(out),
        HELD_OUT=str(held_out),
        SSL_CERT_FILE=CALLERS_CA_FILE,
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
            sidecar.proc.send_signal(signal.SIGUSR2)
            await eventually(held_out.exists, 20, "the sidecar to dump what it holds")
        sidecar.proc.send_signal(signal.SIGTERM)
        assert await sidecar.wait(20) == 0

    held = json.loads(held_out.read_text())
    assert held["contexts"] >= 3, f"aiohttp's two defaults and the SQS client's: {held}"
    assert held["ca_certificates"] == 0, f"no CA bundle parsed for plain-http endpoints: {held}"
    assert held["ssl_cert_file"] == CALLERS_CA_FILE, held
    assert held["collector"] is True, f"the cyclic collector runs again after start-up: {held}"
    modules = set(json.loads(out.read_text()))
    assert {"aiobotocore.session", "carrier_sidecar.probe_http"} <= modules, "dumped after start-up"
    assert modules.isdisjoint(NOT_LOADED), sorted(modules & set(NOT_LOADED))
