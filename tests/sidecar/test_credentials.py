"""Issue 13 §3: web identity (IRSA) on the real process: STS reached where configured, and every
start-up failure blamed on its real cause (token file, STS and its endpoint), quickly.

IRSA-shaped environment: ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``, no static keys, and
``AWS_ENDPOINT_URL_STS`` pointing at a recording forwarder in front of moto_server (moto serves
AssumeRoleWithWebIdentity), or at a server answering STS's XML error, or at a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, WebhookRecorder, eventually, free_port
from tests.support.sidecars import SidecarProcess, env_for, process_env

ROLE = "arn:aws:iam::123456789012:role/carrier"
STATIC_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
INVALID_TOKEN = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    "<Type>Sender</Type><Code>InvalidIdentityToken</Code>"
    "<Message>No OpenIDConnect provider found in your account for https://oidc.example</Message>"
    "</Error><RequestId>r-1</RequestId></ErrorResponse>"
)


@dataclass
class StsStandIn:
    """Forwards to moto (``upstream``) and records each Action, or answers ``refuse`` with
    STS's InvalidIdentityToken error."""

    upstream: str
    refuse: bool = False
    actions: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = dict(p.split("=", 1) for p in body.decode().split("&") if "=" in p)
        self.actions.append(form.get("Action", "?"))
        if self.refuse:
            return web.Response(status=400, text=INVALID_TOKEN, content_type="text/xml")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host"}}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.upstream + request.path_qs, data=body, headers=headers) as answer,
        ):
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                content_type=answer.content_type,
            )

    async def start(self) -> StsStandIn:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def sts_stand_in(moto: MotoServer, refuse: bool = False) -> AsyncIterator[StsStandIn]:
    sts = await StsStandIn(moto.endpoint, refuse=refuse).start()
    try:
        yield sts
    finally:
        await sts.stop()


def irsa_env(base: dict[str, str], token_file: Path, sts_url: str) -> dict[str, str]:
    """A pod's IRSA environment: the role and token file, STS where told, no static keys."""
    env = process_env(base)
    for key in STATIC_KEYS:
        env.pop(key, None)
    env.update(
        {
            "AWS_ROLE_ARN": ROLE,
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "AWS_ENDPOINT_URL_STS": sts_url,
            "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        }
    )
    return env


async def test_irsa_credentials_come_from_the_configured_sts_endpoint(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl")
    url = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=url, MessageBody="via irsa")
    async with sts_stand_in(moto) as sts:
        env = irsa_env(env_for(moto, queue_name, webhook.url), token, sts.url)
        sidecar = await SidecarProcess.start_exact(sidecar_command, env)
        try:

            async def drained() -> bool:
                return await depth(sqs, url) == (0, 0)

            await eventually(drained, 20, "the delivery with web identity credentials")
        finally:
            await sidecar.kill()
    assert webhook.bodies() == [b"via irsa"]
    assert "AssumeRoleWithWebIdentity" in sts.actions, "STS was called at AWS_ENDPOINT_URL_STS"


@contextlib.asynccontextmanager
async def blackhole() -> AsyncIterator[str]:
    """Accepts connections and never answers (bounded): a firewalled or hung STS."""
    gone = asyncio.Event()

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gone.wait(), 60)
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        gone.set()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


@pytest.mark.parametrize(
    "case", ["missing-token-file", "sts-refuses", "sts-unreachable", "sts-blackholed"]
)
async def test_irsa_start_up_failures_name_their_real_cause(
    moto: MotoServer,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
    tmp_path: Path,
    case: str,
) -> None:
    token = tmp_path / "token"
    if case != "missing-token-file":
        token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl")
    async with sts_stand_in(moto, refuse=case == "sts-refuses") as sts, blackhole() as hung:
        closed = hung if case == "sts-blackholed" else f"http://127.0.0.1:{free_port()}"
        sts_url = sts.url if case in {"missing-token-file", "sts-refuses"} else closed
        env = irsa_env(env_for(moto, queue_name, webhook.url), token, sts_url)
        started = time.monotonic()
        sidecar = await SidecarProcess.start_exact(sidecar_command, env)
        try:
            code = await sidecar.wait(30)
            stderr = await sidecar.stderr()
        finally:
            await sidecar.kill()
        took = time.monotonic() - started
    lines = stderr.strip().splitlines()
    print(f"{case}: exit {code} after {took:.1f}s: {stderr.strip()}")
    assert code == 2
    assert len(lines) == 1, stderr
    (line,) = lines
    assert "SQS" not in line, "a credential failure is not blamed on SQS"
    if case == "missing-token-file":
        assert line.startswith(
            f"carrier-sidecar: AWS_WEB_IDENTITY_TOKEN_FILE: cannot read the web identity "
            f"token file '{token}'"
        )
    elif case == "sts-refuses":
        assert f"STS at {sts.url} refused the web identity token" in line
        assert "(InvalidIdentityToken)" in line
        assert ROLE in line
    else:
        assert f"cannot reach STS at {closed}" in line
