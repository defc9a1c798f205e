"""The real ``carrier-operator`` process listens on every address family: liveness and webhooks
answer on 127.0.0.1 and on ::1 (an IPv6-only cluster's kubelet and API server use IPv6)."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import sys
from pathlib import Path

from carrier_operator.config import OperatorSettings
from tests.support.dual_stack import requires_ipv6, status_on, statuses
from tests.support.kube import SECRETS, FakeKube
from tests.support.servers import eventually, free_port

SCRIPT = str(Path(sys.executable).parent / "carrier-operator")


@requires_ipv6
async def test_liveness_and_webhooks_answer_on_ipv4_and_ipv6(kube: FakeKube) -> None:
    liveness, webhook = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kube.kubeconfig),
        "CARRIER_OPERATOR_LIVENESS_PORT": str(liveness),
        "CARRIER_OPERATOR_WEBHOOK_PORT": str(webhook),
        "CARRIER_OPERATOR_LOG_FORMAT": "plain",
    }
    proc = await asyncio.create_subprocess_exec(
        SCRIPT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    config = OperatorSettings()
    try:
        await eventually(
            lambda: status_on("127.0.0.1", liveness, "/healthz"), 30, "the liveness endpoint"
        )
        assert await statuses(liveness, "/healthz") == {"127.0.0.1": 200, "::1": 200}

        def secret() -> dict[str, str]:
            found = kube.get(SECRETS, config.service_namespace, config.cert_secret) or {}
            return dict(found.get("data") or {})

        await eventually(secret, 30, "the self-signed certificate")
        ca = base64.b64decode(secret()["ca.crt"]).decode()
        context = ssl.create_default_context(cadata=ca)  # verified as the API server does
        await eventually(
            lambda: status_on(
                "127.0.0.1", webhook, "/", context=context, server_hostname=config.service_host
            ),
            30,
            "the webhook server",
        )
        answers = await statuses(
            webhook, "/mutate-pods", context=context, server_hostname=config.service_host
        )
        assert answers == {"127.0.0.1": 405, "::1": 405}  # a GET: answered, over verified TLS
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
