"""TLS: the pure certificate rules, then the running server (reuse, renewal, live rotation,
cert-manager files) observed from a real TLS client that verifies like the API server."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from carrier_operator.cert_directory import CertDirectory
from carrier_operator.config import OperatorSettings
from carrier_operator.pki import (
    CertMaterial,
    cert_sans,
    from_secret_data,
    generate_ca,
    issue_serving_cert,
    renew,
    renewal_reason,
    to_secret_data,
    webhook_sans,
)
from tests.injector.harness import (
    create_webhook_configurations,
    running_injector,
    webhook_configuration,
)
from tests.support.kube import MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS
from tests.support.servers import eventually

pytestmark = pytest.mark.slow  # real servers or processes

CONFIG = OperatorSettings(service_name="carrier-operator", service_namespace="carrier-system")
SANS = webhook_sans(CONFIG)
NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
RENEW = dt.timedelta(days=30)


def test_sans_cover_every_name_of_the_service() -> None:
    assert SANS == [
        "carrier-operator.carrier-system.svc",
        "carrier-operator.carrier-system.svc.cluster.local",
        "carrier-operator.carrier-system",
        "carrier-operator",
    ]


def test_fresh_material_is_valid_and_verifies_against_its_ca() -> None:
    material = renew(None, SANS, NOW, CONFIG)
    assert renewal_reason(material, SANS, NOW, RENEW) is None
    assert set(cert_sans(material.cert)) == set(SANS)
    leaf = x509.load_pem_x509_certificate(material.cert)
    ca = x509.load_pem_x509_certificate(material.ca_bundle)
    leaf.verify_directly_issued_by(ca)
    assert leaf.not_valid_after_utc - NOW <= dt.timedelta(days=CONFIG.cert_validity_days)
    assert ca.not_valid_after_utc > leaf.not_valid_after_utc
    assert from_secret_data(to_secret_data(material)) == material


@pytest.mark.parametrize(
    ("age_days", "renewed"),
    [(0, False), (300, False), (334, False), (336, True), (400, True)],
)
def test_renewal_is_due_before_expiry(age_days: int, renewed: bool) -> None:
    material = renew(None, SANS, NOW, CONFIG)  # valid 365 days, renewed 30 days before
    later = NOW + dt.timedelta(days=age_days)
    assert (renewal_reason(material, SANS, later, RENEW) is not None) is renewed


def test_renewal_reasons() -> None:
    material = renew(None, SANS, NOW, CONFIG)
    assert renewal_reason(None, SANS, NOW, RENEW) == "no certificate yet"
    assert "names changed" in str(renewal_reason(material, [*SANS, "extra"], NOW, RENEW))
    broken = CertMaterial(material.ca_bundle, b"junk", material.key, material.ca_key)
    assert "unreadable" in str(renewal_reason(broken, SANS, NOW, RENEW))
    other_ca, _ = generate_ca(NOW, 10)
    foreign = CertMaterial(other_ca, material.cert, material.key, material.ca_key)
    assert "not signed" in str(renewal_reason(foreign, SANS, NOW, RENEW))


def test_leaf_rotation_keeps_the_ca_and_ca_rotation_bundles_the_old_one() -> None:
    first = renew(None, SANS, NOW, CONFIG)
    second = renew(first, SANS, NOW + dt.timedelta(days=340), CONFIG)
    assert second.ca_bundle == first.ca_bundle  # leaf only: the caBundle does not change
    assert second.cert != first.cert
    ca_end = x509.load_pem_x509_certificate(first.ca_bundle).not_valid_after_utc
    late = ca_end - dt.timedelta(days=100)
    third = renew(second, SANS, late, CONFIG)
    cas = x509.load_pem_x509_certificates(third.ca_bundle)
    assert len(cas) == 2  # the new CA first, the old one still trusted until it expires
    assert cas[1].public_bytes(ssl_encoding()) == first.ca_bundle
    x509.load_pem_x509_certificate(third.cert).verify_directly_issued_by(cas[0])


def ssl_encoding() -> serialization.Encoding:
    return serialization.Encoding.PEM


def test_leaf_never_outlives_its_ca() -> None:
    ca, key = generate_ca(NOW, 10)
    cert, _ = issue_serving_cert(ca, key, SANS, NOW, 365)
    leaf = x509.load_pem_x509_certificate(cert)
    assert leaf.not_valid_after_utc <= x509.load_pem_x509_certificate(ca).not_valid_after_utc


# --- against the running server -------------------------------------------------------------


async def served_fingerprint(port: int, ca: bytes, hostname: str) -> str:
    """Handshake like the API server: verify against ``ca`` for the Service's DNS name."""
    context = ssl.create_default_context(cadata=ca.decode())
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=hostname
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    pem = ssl.DER_cert_to_PEM_cert(der).encode()
    return hashlib.sha256(
        x509.load_pem_x509_certificate(pem).public_bytes(ssl_encoding())
    ).hexdigest()


def fingerprint(material: CertMaterial) -> str:
    cert = x509.load_pem_x509_certificate(material.cert)
    return hashlib.sha256(cert.public_bytes(ssl_encoding())).hexdigest()


def secret_with(material: CertMaterial, config: OperatorSettings) -> dict[str, object]:
    return {
        "metadata": {"name": config.cert_secret, "namespace": "carrier-system"},
        "type": "Opaque",
        "data": to_secret_data(material),
    }


async def test_a_valid_secret_is_reused_so_replicas_agree() -> None:
    config = OperatorSettings(service_namespace="carrier-system")
    existing = renew(None, webhook_sans(config), dt.datetime.now(dt.UTC), config)
    async with running_injector(secrets=[secret_with(existing, config)]) as injector:
        assert injector.server.material == existing
        for name in webhook_sans(config):
            got = await served_fingerprint(injector.config.webhook_port, existing.ca_bundle, name)
            assert got == fingerprint(existing)
        assert not injector.kube.requests("PATCH", "/secrets/")  # nothing rewritten


async def test_an_expiring_secret_is_renewed_at_start() -> None:
    config = OperatorSettings(service_namespace="carrier-system")
    old_now = dt.datetime.now(dt.UTC) - dt.timedelta(days=350)
    expiring = renew(None, webhook_sans(config), old_now, config)
    async with running_injector(secrets=[secret_with(expiring, config)]) as injector:
        material = injector.server.material
        assert material is not None
        assert material.cert != expiring.cert
        assert material.ca_bundle == expiring.ca_bundle  # same CA: the caBundle stays valid
        secret = injector.kube.get("v1/secrets", "carrier-system", config.cert_secret)
        assert secret is not None
        assert from_secret_data(secret["data"]) == material


async def test_rotation_swaps_the_cert_without_dropping_the_listener() -> None:
    async with running_injector() as injector:
        before = injector.server.material
        assert before is not None
        # Another replica renewed the Secret (e.g. after a CA change): we pick it up in place.
        config = injector.config
        newer = renew(None, webhook_sans(config), dt.datetime.now(dt.UTC), config)
        await injector.kube.patch(
            "v1/secrets", "carrier-system", config.cert_secret, {"data": to_secret_data(newer)}
        )
        injector.operator.call(injector.server.check_certificate_now)
        await eventually(lambda: injector.server.material == newer, 10, "the renewed cert")
        got = await served_fingerprint(config.webhook_port, newer.ca_bundle, config.service_host)
        assert got == fingerprint(newer)
        hook = injector.kube.get(
            "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            None,
            config.mutating_webhook_configuration,
        )
        assert hook is not None
        bundle = hook["webhooks"][0]["clientConfig"]["caBundle"]
        assert base64.b64decode(bundle) == newer.ca_bundle


async def test_cert_manager_files_are_served_and_reloaded(tmp_path: Path) -> None:
    config = OperatorSettings(service_namespace="carrier-system")
    first = renew(None, webhook_sans(config), dt.datetime.now(dt.UTC), config)

    def write(material: CertMaterial) -> None:
        (tmp_path / "tls.crt").write_bytes(material.cert)
        (tmp_path / "tls.key").write_bytes(material.key)
        (tmp_path / "ca.crt").write_bytes(material.ca_bundle)

    write(first)
    async with running_injector(cert_dir=str(tmp_path)) as injector:
        assert isinstance(injector.server.source, CertDirectory)
        port = injector.config.webhook_port
        assert await served_fingerprint(port, first.ca_bundle, config.service_host) == fingerprint(
            first
        )
        # cert-manager mode never writes the Secret or the caBundle (its CA injector does).
        assert not injector.kube.requests("POST", "/secrets")
        assert not injector.kube.requests("PATCH", "webhookconfigurations")
        second = renew(None, webhook_sans(config), dt.datetime.now(dt.UTC), config)
        write(second)
        injector.operator.call(injector.server.check_certificate_now)
        await eventually(
            lambda: (
                injector.server.material is not None
                and injector.server.material.cert == second.cert
            ),
            10,
            "the reloaded files",
        )
        assert await served_fingerprint(port, second.ca_bundle, config.service_host) == fingerprint(
            second
        )


async def test_ca_bundle_reaches_configurations_installed_after_start_and_heals_drift() -> None:
    async with running_injector(webhook_configurations=False) as injector:
        config = injector.config
        await create_webhook_configurations(injector.kube, config)
        injector.operator.call(injector.server.check_certificate_now)
        material = injector.server.material
        assert material is not None
        expected = base64.b64encode(material.ca_bundle).decode()

        def bundles() -> list[str]:
            found = []
            for resource, name in (
                (MUTATING_WEBHOOKS, config.mutating_webhook_configuration),
                (VALIDATING_WEBHOOKS, config.validating_webhook_configuration),
            ):
                obj = injector.kube.get(resource, None, name) or {}
                for hook in obj.get("webhooks", []):
                    found.append(hook.get("clientConfig", {}).get("caBundle", ""))
            return found

        await eventually(lambda: bundles() == [expected, expected], 10, "caBundles set")
        # A chart upgrade that blanks the caBundle is repaired at the next check.
        await injector.kube.patch(
            MUTATING_WEBHOOKS,
            None,
            config.mutating_webhook_configuration,
            {
                "webhooks": [
                    {
                        **webhook_configuration(
                            config.mutating_webhook_configuration, "/mutate-pods", config
                        )["webhooks"][0]
                    }
                ]
            },
        )
        assert bundles()[0] == ""
        injector.operator.call(injector.server.check_certificate_now)
        await eventually(lambda: bundles() == [expected, expected], 10, "caBundle repaired")
