"""SQS over https, as in every AWS account: the real process verifies the endpoint's certificate.

The sidecar skips CA loading only for a plain-http endpoint (``sqs.tls_verify_for``: nothing to
verify there, and parsing the CA bundle costs ~36 ms of start-up). An https endpoint whose
certificate is signed by a private CA is trusted through ``AWS_CA_BUNDLE`` and refused without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from carrier_sidecar.sqs import tls_verify_for
from tests.support.kube_tls import TestCA
from tests.support.queues import drained, make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually
from tests.support.sidecars import env_for, sidecar_process
from tests.support.sqs_proxy import SqsProxy


@dataclass
class HttpsSqs:
    """A queue on moto, reached through a TLS proxy whose certificate a test CA signed."""

    proxy: SqsProxy
    ca_file: Path
    queue_url: str
    env: dict[str, str]  # the sidecar's, pointed at the proxy, without AWS_CA_BUNDLE


@pytest.fixture
async def https_sqs(
    moto: MotoServer, sqs: Any, webhook: WebhookRecorder, queue_name: str, tmp_path: Path
) -> AsyncIterator[HttpsSqs]:
    ca = TestCA.create(tmp_path)
    context = ca.serving_context("sqs", "127.0.0.1")
    proxy = await SqsProxy(moto.endpoint, message_id=lambda body: body, tls=context).start()
    try:
        url = await make_queue(sqs, queue_name)
        env = env_for(moto, queue_name, webhook.url, CARRIER_SQS_ENDPOINT=proxy.endpoint)
        yield HttpsSqs(proxy, ca.ca_file, url, env)
    finally:
        await proxy.stop()


async def test_an_https_endpoint_is_verified_with_aws_ca_bundle(
    sqs: Any, webhook: WebhookRecorder, sidecar_command: list[str], https_sqs: HttpsSqs
) -> None:
    await sqs.send_message(QueueUrl=https_sqs.queue_url, MessageBody="over tls")
    env = {**https_sqs.env, "AWS_CA_BUNDLE": str(https_sqs.ca_file)}
    async with sidecar_process(sidecar_command, env) as sidecar:
        await eventually(lambda: webhook.bodies() == [b"over tls"], 30, "the delivery")
        await eventually(lambda: drained(sqs, https_sqs.queue_url), 30, "the delete")
        assert not sidecar.logged("error")
    assert https_sqs.proxy.ledger.calls.get("ReceiveMessage", 0) >= 1, "calls went through TLS"


async def test_an_https_endpoint_signed_by_an_unknown_ca_is_refused_at_start_up(
    sidecar_command: list[str], https_sqs: HttpsSqs
) -> None:
    async with sidecar_process(sidecar_command, https_sqs.env) as sidecar:
        assert await sidecar.wait(60) == 2
        stderr = await sidecar.stderr()
    assert "CERTIFICATE_VERIFY_FAILED" in stderr, stderr
    assert "a private CA is trusted through AWS_CA_BUNDLE" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert https_sqs.proxy.ledger.calls == {}, "no request was answered past the failed handshake"


@pytest.mark.parametrize(
    ("endpoint", "proxies", "verify"),
    [
        ("http://127.0.0.1:4566", {}, False),
        ("HTTP://localstack:4566", {}, False),
        ("https://sqs.eu-west-1.amazonaws.com", {}, None),
        (None, {}, None),
        ("http://127.0.0.1:4566", {"HTTP_PROXY": "https://proxy.internal:3128"}, None),
    ],
)
def test_only_a_plain_http_endpoint_without_a_proxy_skips_verification(
    endpoint: str | None,
    proxies: dict[str, str],
    verify: bool | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in proxies.items():
        monkeypatch.setenv(name, value)
    assert tls_verify_for(endpoint) is verify
