"""cert-manager renewals without an outage: the leaf is replaced on disk the way the kubelet
updates a Secret volume (a new timestamped directory, then the ``..data`` symlink swapped), while
a client that verifies against the CA, as the API server does, keeps opening connections."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import kopf
import pytest
from cryptography import x509

from carrier_operator.admission import ENDPOINTS
from carrier_operator.cert_directory import CertDirectory
from carrier_operator.config import OperatorSettings
from carrier_operator.pki import (
    CertMaterial,
    generate_ca,
    issue_serving_cert,
    key_matches,
    webhook_sans,
)
from carrier_operator.webhook_server import InjectorServer
from tests.support.servers import eventually, free_port

pytestmark = pytest.mark.slow  # real servers or processes

CONFIG = OperatorSettings(service_namespace="carrier-system")
SANS = webhook_sans(CONFIG)


def kubelet_update(folder: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` as the kubelet's AtomicWriter does: new dir, then one rename of ``..data``."""
    stamp = folder / f"..{dt.datetime.now(dt.UTC):%Y_%m_%d_%H_%M_%S.%f}.{uuid.uuid4().hex[:6]}"
    stamp.mkdir()
    for name, content in files.items():
        (stamp / name).write_bytes(content)
    data = folder / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    temporary = folder / "..data_tmp"
    os.symlink(stamp.name, temporary)
    os.rename(temporary, data)  # the one atomic step
    for name in files:
        if not (folder / name).is_symlink():
            os.symlink(f"..data/{name}", folder / name)
    if old is not None:
        for leftover in (folder / old).iterdir():
            leftover.unlink()
        (folder / old).rmdir()


def leaf(ca: tuple[bytes, bytes]) -> dict[str, bytes]:
    cert, key = issue_serving_cert(ca[0], ca[1], SANS, dt.datetime.now(dt.UTC), 90)
    return {"tls.crt": cert, "tls.key": key, "ca.crt": ca[0]}


def serial(pem_or_der: bytes) -> int:
    if pem_or_der.startswith(b"-----"):
        return int(x509.load_pem_x509_certificate(pem_or_der).serial_number)
    return int(x509.load_der_x509_certificate(pem_or_der).serial_number)


@dataclass
class Prober:
    """New TLS connections, one after another, verified against the CA for the Service name."""

    port: int
    ca: bytes
    served: list[int] = field(default_factory=list)  # serial numbers, in order
    failures: list[str] = field(default_factory=list)

    async def once(self) -> None:
        context = ssl.create_default_context(cadata=self.ca.decode())
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", self.port, ssl=context, server_hostname=CONFIG.service_host
                ),
                10,
            )
        except (OSError, TimeoutError) as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            return
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.served.append(serial(der))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.once()
            await asyncio.sleep(0.02)


async def _answer(review: Any, **_: Any) -> dict[str, Any]:
    return {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": {}}


@contextlib.asynccontextmanager
async def serving(folder: Path) -> AsyncIterator[InjectorServer]:
    """The injector's HTTPS server on ``folder``'s files, driven as kopf drives it."""
    server = InjectorServer(
        source=CertDirectory(str(folder)),
        endpoints=ENDPOINTS,
        addr="127.0.0.1",
        port=free_port(),
        host=CONFIG.service_host,
    )
    configs = server(cast(kopf.WebhookFn, _answer))  # a stand-in for kopf's review handler

    async def drive() -> None:
        async for _config in configs:
            pass

    task = asyncio.ensure_future(drive())
    try:
        await eventually(server.listening.is_set, 20, "the webhook server")
        yield server
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # cancelled inside the server's loop: its finally closes the listener


async def test_a_renewed_leaf_is_served_within_seconds_with_no_failed_handshake(
    tmp_path: Path,
) -> None:
    ca = generate_ca(dt.datetime.now(dt.UTC), 3650)
    first = leaf(ca)
    kubelet_update(tmp_path, first)
    async with serving(tmp_path) as server:
        prober = Prober(server.port or 0, ca[0])
        stop = asyncio.Event()
        probing = asyncio.ensure_future(prober.run(stop))
        try:
            await eventually(lambda: prober.served, 10, "a first handshake")
            second = leaf(ca)  # cert-manager renewed the leaf (new key); the CA is unchanged
            kubelet_update(tmp_path, second)
            new = serial(second["tls.crt"])
            await eventually(lambda: new in prober.served, 5, "the renewed leaf to be served")
            count = len(prober.served)
            await eventually(lambda: len(prober.served) >= count + 5, 10, "more handshakes")
        finally:
            stop.set()
            await probing
    assert prober.failures == []
    assert set(prober.served) == {serial(first["tls.crt"]), new}
    switched = prober.served.index(new)
    assert all(s == new for s in prober.served[switched:])  # never back to the old leaf


async def test_a_half_written_pair_is_not_loaded(tmp_path: Path) -> None:
    ca = generate_ca(dt.datetime.now(dt.UTC), 3650)
    first, second = leaf(ca), leaf(ca)
    kubelet_update(tmp_path, first)
    source = CertDirectory(str(tmp_path))
    assert (await source.initial()).cert == first["tls.crt"]
    # Files written one by one (not the kubelet's way): the new cert with the old key.
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / name).unlink()
        (tmp_path / name).write_bytes(first[name])
    (tmp_path / "tls.crt").write_bytes(second["tls.crt"])
    assert await source.refresh() is None  # mismatched: keep serving the current pair
    (tmp_path / "tls.key").write_bytes(second["tls.key"])
    renewed = await source.refresh()
    assert renewed is not None
    assert key_matches(renewed)
    assert renewed == CertMaterial(ca_bundle=ca[0], cert=second["tls.crt"], key=second["tls.key"])
    assert await source.refresh() is None  # unchanged since: nothing to do


def test_key_matches_tells_a_pair_from_two_renewals() -> None:
    ca = generate_ca(dt.datetime.now(dt.UTC), 3650)
    one, two = leaf(ca), leaf(ca)
    assert key_matches(CertMaterial(ca[0], one["tls.crt"], one["tls.key"]))
    assert not key_matches(CertMaterial(ca[0], one["tls.crt"], two["tls.key"]))
