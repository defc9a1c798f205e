"""The webhook's certificates as pure data: a CA and a serving cert made with ``cryptography``,
renewal decisions, the Secret encoding, and TLS contexts. No I/O: the sources
(:mod:`cert_directory`, :mod:`cert_self_signed`) do that, behind :class:`cert_source.CertSource`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .config import OperatorSettings

CA_LIFETIME_FACTOR = 10  # the CA outlives ten leaves
SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")


@dataclass(frozen=True)
class CertMaterial:
    """PEM bytes: the CA bundle clients trust, the CA key (self-signed only), the leaf + key."""

    ca_bundle: bytes
    cert: bytes
    key: bytes
    ca_key: bytes | None = None

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.cert).hexdigest()[:16]

    @property
    def not_after(self) -> dt.datetime:
        return x509.load_pem_x509_certificate(self.cert).not_valid_after_utc


# --- pure: building and judging certificates -------------------------------------------------


def webhook_sans(config: OperatorSettings) -> list[str]:
    """Every name the API server may use for the Service (kopf#785: svc vs svc.cluster.local)."""
    name, namespace = config.service_name, config.service_namespace
    return [
        config.service_host,
        f"{config.service_host}.cluster.local",
        f"{name}.{namespace}",
        name,
    ]


def now() -> dt.datetime:
    """UTC now, the one clock of validity and renewal decisions."""
    return dt.datetime.now(dt.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_ca(now: dt.datetime, days: int) -> tuple[bytes, bytes]:
    """A fresh self-signed CA (ECDSA P-256): (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carrier-operator webhook CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue_serving_cert(
    ca_cert: bytes, ca_key: bytes, sans: Sequence[str], now: dt.datetime, days: int
) -> tuple[bytes, bytes]:
    """A leaf for ``sans`` signed by the CA, never outliving it: (cert PEM, key PEM)."""
    issuer = x509.load_pem_x509_certificate(ca_cert)
    signer = serialization.load_pem_private_key(ca_key, password=None)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + dt.timedelta(days=days), issuer.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def cert_sans(cert_pem: bytes) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return list(ext.value.get_values_for_type(x509.DNSName))


def renewal_reason(
    material: CertMaterial | None,
    sans: Sequence[str],
    now: dt.datetime,
    renew_before: dt.timedelta,
) -> str | None:
    """Why the stored material must be replaced (None = keep serving it)."""
    if material is None:
        return "no certificate yet"
    try:
        leaf = x509.load_pem_x509_certificate(material.cert)
        cas = x509.load_pem_x509_certificates(material.ca_bundle)
        serialization.load_pem_private_key(material.key, password=None)
        names = cert_sans(material.cert)
    except (ValueError, x509.ExtensionNotFound) as exc:
        return f"unreadable certificate ({exc})"
    if set(names) != set(sans):
        return f"names changed ({', '.join(names)} → {', '.join(sans)})"
    if leaf.not_valid_after_utc - renew_before <= now:
        return f"serving certificate expires {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if leaf.not_valid_before_utc > now + dt.timedelta(minutes=10):
        return "serving certificate not valid yet"
    if not any(_signed_by(leaf, ca) for ca in cas):
        return "serving certificate not signed by the CA bundle"
    return None


def _signed_by(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):  # InvalidSignature has no common base
        return False
    return True


def renew(
    previous: CertMaterial | None, sans: Sequence[str], now: dt.datetime, config: OperatorSettings
) -> CertMaterial:
    """New leaf; a new CA too if the old one is absent or near its end (bundled with the old)."""
    days = config.cert_validity_days
    renew_before = dt.timedelta(days=config.cert_renew_before_days)
    ca_cert = ca_key = None
    keep: list[bytes] = []
    if previous is not None and previous.ca_key is not None:
        try:
            current = x509.load_pem_x509_certificates(previous.ca_bundle)[0]
            if current.not_valid_after_utc - renew_before > now + dt.timedelta(days=days):
                ca_cert = current.public_bytes(serialization.Encoding.PEM)
                ca_key = previous.ca_key
            elif current.not_valid_after_utc > now:
                keep.append(current.public_bytes(serialization.Encoding.PEM))
        except ValueError:
            pass
    if ca_cert is None or ca_key is None:
        ca_cert, ca_key = generate_ca(now, days * CA_LIFETIME_FACTOR)
    cert, key = issue_serving_cert(ca_cert, ca_key, sans, now, days)
    return CertMaterial(ca_bundle=b"".join([ca_cert, *keep]), cert=cert, key=key, ca_key=ca_key)


def to_secret_data(material: CertMaterial) -> dict[str, str]:
    values = {
        "ca.crt": material.ca_bundle,
        "tls.crt": material.cert,
        "tls.key": material.key,
        "ca.key": material.ca_key or b"",
    }
    return {k: base64.b64encode(v).decode("ascii") for k, v in values.items()}


def from_secret_data(data: Any) -> CertMaterial | None:
    if not isinstance(data, dict):
        return None
    try:
        raw = {k: base64.b64decode(str(data.get(k, "")), validate=True) for k in SECRET_KEYS}
    except ValueError:
        return None
    if not raw["ca.crt"] or not raw["tls.crt"] or not raw["tls.key"]:
        return None
    return CertMaterial(raw["ca.crt"], raw["tls.crt"], raw["tls.key"], raw["ca.key"] or None)


def load_into(context: ssl.SSLContext, material: CertMaterial) -> None:
    """Load (or replace) the serving cert in a live context: new handshakes get it at once."""
    with tempfile.TemporaryDirectory(prefix="carrier-tls-") as folder:
        cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
        cert_file.write_bytes(material.cert)
        key_file.touch(mode=0o600)
        key_file.write_bytes(material.key)
        context.load_cert_chain(cert_file, key_file)


def server_context(material: CertMaterial) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_into(context, material)
    return context


# --- I/O: where the material comes from -----------------------------------------------------


def key_matches(material: CertMaterial) -> bool:
    """Whether the private key is the leaf's (a cert and key from two renewals are not)."""
    try:
        cert = x509.load_pem_x509_certificate(material.cert)
        key = serialization.load_pem_private_key(material.key, password=None)
    except ValueError:
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(
        cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    )
