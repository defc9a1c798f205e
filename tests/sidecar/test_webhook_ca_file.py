"""Issue 13 §6: CARRIER_WEBHOOK_CA_FILE trusts a private CA for an https webhook.

A real TLS server whose leaf certificate (SAN 127.0.0.1) is signed by a test CA; the real
``carrier-sidecar`` verifies it with the CA file and nothing else (no SSL_CERT_FILE).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.queues import depth, make_queue
from tests.support.servers import MotoServer, eventually, free_port
from tests.support.sidecars import env_for, sidecar_process


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def private_ca_chain(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """(the CA's PEM file, a server context with a 127.0.0.1 leaf that CA signed)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("carrier test CA"))
        .issuer_name(_name("carrier test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("webhook"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.fixture
async def private_ca_webhook(tmp_path: Path) -> AsyncIterator[tuple[str, Path, list[bytes]]]:
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=204)

    ca_file, context = private_ca_chain(tmp_path)
    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{port}/hook", ca_file, bodies
    finally:
        await runner.cleanup()


async def test_the_ca_file_verifies_a_private_ca_webhook(
    moto: MotoServer,
    sqs: Any,
    queue_name: str,
    sidecar_command: list[str],
    private_ca_webhook: tuple[str, Path, list[bytes]],
) -> None:
    url, ca_file, bodies = private_ca_webhook
    queue = await make_queue(sqs, queue_name)
    await sqs.send_message(QueueUrl=queue, MessageBody="private ca")
    env = env_for(moto, queue_name, url, CARRIER_WEBHOOK_CA_FILE=str(ca_file))
    async with sidecar_process(sidecar_command, env):

        async def drained() -> bool:
            return await depth(sqs, queue) == (0, 0)

        await eventually(drained, 15, "the delivery over verified TLS")
    assert bodies == [b"private ca"]


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
async def test_an_unusable_ca_file_is_one_line_and_exit_2(
    moto: MotoServer,
    queue_name: str,
    sidecar_command: list[str],
    tmp_path: Path,
    content: bytes | None,
) -> None:
    ca_file = tmp_path / "ca.crt"
    if content is not None:
        ca_file.write_bytes(content)
    env = env_for(
        moto, queue_name, "https://127.0.0.1:9/hook", CARRIER_WEBHOOK_CA_FILE=str(ca_file)
    )
    async with sidecar_process(sidecar_command, env) as sidecar:
        assert await sidecar.wait(20) == 2
        stderr = await sidecar.stderr()
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("carrier-sidecar: CARRIER_WEBHOOK_CA_FILE: cannot load CA")
    assert str(ca_file) in lines[0]
