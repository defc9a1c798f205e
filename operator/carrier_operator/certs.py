"""The webhook's TLS: a self-signed CA and serving cert (with ``cryptography``), or cert-manager's.

Self-signed mode keeps both in one Secret so every replica serves a cert the same caBundle
trusts: the first replica creates it, the others reuse it while it is valid. The CA lives long
and only the leaf rotates (``renew_before`` ahead of expiry), so the caBundle rarely changes;
when the CA itself is renewed, the bundle carries the old CA too until it expires, so replicas
still serving an old leaf stay trusted while they catch up.

cert-manager mode reads ``tls.crt``/``tls.key``/``ca.crt`` from a mounted directory and leaves
the caBundle to cert-manager's CA injector.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .config import OperatorSettings
from .kubeapi import JSON_PATCH, MERGE_PATCH, KubeAPI, KubeAPIError

logger = logging.getLogger(__name__)

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


def _now() -> dt.datetime:
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


class CertSource:
    """Where the serving cert comes from; ``refresh`` returns new material when it changed."""

    async def initial(self) -> CertMaterial:
        raise NotImplementedError

    async def refresh(self) -> CertMaterial | None:
        raise NotImplementedError

    def next_check(self) -> float:
        """Seconds until ``refresh`` is worth calling again."""
        raise NotImplementedError

    def recheck(self) -> None:
        """Make the next ``refresh`` re-read everything (someone says it changed)."""


class CertDirectory(CertSource):
    """cert-manager's mounted Secret, polled every second: a renewed leaf is served at once.

    The kubelet updates a Secret volume atomically: it writes a new timestamped directory and
    swaps the ``..data`` symlink the files point through. Each poll is a ``readlink`` and three
    ``stat`` calls (no reads, no hashing) until that signature changes; only then are the files
    read, and served if the key matches the certificate (a half-written update waits for the
    next poll). One second of that costs microseconds of CPU; a 60 s poll (kopf's default)
    left the old leaf served for up to a minute after the kubelet synced.
    """

    FILES = ("tls.crt", "tls.key", "ca.crt")

    def __init__(self, folder: str, interval: float = 1.0) -> None:
        self.folder = Path(folder)
        self.interval = interval
        self._digest = ""
        self._signature: tuple[object, ...] = ()

    def _stat_signature(self) -> tuple[object, ...]:
        """What changes whenever the kubelet (or anyone) replaces one of the files."""
        try:
            link: str | None = os.readlink(self.folder / "..data")
        except OSError:
            link = None
        stats: list[object] = [link]
        for name in self.FILES:
            try:
                info = (self.folder / name).stat()
            except OSError:
                stats.append(None)
                continue
            stats.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(stats)

    def _read(self) -> tuple[CertMaterial, str]:
        cert = (self.folder / "tls.crt").read_bytes()
        key = (self.folder / "tls.key").read_bytes()
        ca_file = self.folder / "ca.crt"
        ca = ca_file.read_bytes() if ca_file.exists() else cert
        digest = hashlib.sha256(cert + key + ca).hexdigest()
        return CertMaterial(ca_bundle=ca, cert=cert, key=key), digest

    async def initial(self) -> CertMaterial:
        self._signature = self._stat_signature()
        material, self._digest = await asyncio.to_thread(self._read)
        return material

    async def refresh(self) -> CertMaterial | None:
        signature = self._stat_signature()
        if signature == self._signature:
            return None
        try:
            material, digest = await asyncio.to_thread(self._read)
        except OSError as exc:  # mid-update by the kubelet: try again next time
            logger.warning("Cannot read the webhook certificate in %s: %s", self.folder, exc)
            return None
        if digest == self._digest:
            self._signature = signature
            return None
        if not key_matches(material):
            logger.warning("Webhook certificate in %s is mid-update (key ≠ cert).", self.folder)
            return None
        self._signature, self._digest = signature, digest
        return material

    def next_check(self) -> float:
        return self.interval


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


class SelfSigned(CertSource):
    """The operator's own CA and cert in a Secret, shared by replicas, caBundle kept current."""

    def __init__(
        self,
        api: Callable[[], Awaitable[KubeAPI]],
        config: OperatorSettings,
        namespace: str,
        *,
        max_interval: float = 300.0,
        bundle_interval: float = 5.0,
    ) -> None:
        self._api = api
        self.config = config
        self.namespace = namespace
        self.sans = webhook_sans(config)
        self.max_interval = max_interval
        self.bundle_interval = bundle_interval
        self._current: CertMaterial | None = None
        self._missing: list[str] = []
        self._secret_due = 0.0  # monotonic time of the next Secret read

    def configurations(self) -> list[tuple[str, str]]:
        """The webhook configurations the chart rendered: (plural, name)."""
        found = [("mutatingwebhookconfigurations", self.config.mutating_webhook_configuration)]
        if self.config.validate_bindings:  # webhook.validateBindings=false renders no validator
            found.append(
                ("validatingwebhookconfigurations", self.config.validating_webhook_configuration)
            )
        return found

    @property
    def _path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/secrets/{self.config.cert_secret}"

    def _renew_before(self) -> dt.timedelta:
        return dt.timedelta(days=self.config.cert_renew_before_days)

    async def initial(self) -> CertMaterial:
        material = await self._ensure()
        await self.publish_ca_bundle(material.ca_bundle)
        return material

    async def refresh(self) -> CertMaterial | None:
        before = self._current
        if self._current is None or time.monotonic() >= self._secret_due:
            material = await self._ensure()
        else:
            material = self._current
        # Every check (each ``bundle_interval``), not only on change: a caBundle blanked by
        # Argo CD, `helm template | kubectl apply` or a chart upgrade is back within seconds,
        # and configurations installed after the operator started get it. One GET per
        # configuration; a PATCH only where the caBundle differs.
        await self.publish_ca_bundle(material.ca_bundle)
        return None if material == before else material

    def next_check(self) -> float:
        if self._current is None:
            return 5.0
        return max(1.0, min(self.bundle_interval, self._secret_interval()))

    def recheck(self) -> None:
        self._secret_due = 0.0

    def _secret_interval(self) -> float:
        """Seconds until the Secret is worth re-reading: renewal due, or another replica's."""
        assert self._current is not None
        due = self._current.not_after - self._renew_before() - _now()
        return max(1.0, min(self.max_interval, due.total_seconds()))

    async def _ensure(self) -> CertMaterial:
        """Reuse the Secret's material if valid, else renew it there (first writer wins)."""
        for _attempt in range(5):
            secret = await (await self._api()).get(self._path)
            stored = from_secret_data(secret.get("data")) if secret else None
            reason = renewal_reason(stored, self.sans, _now(), self._renew_before())
            if reason is None and stored is not None:
                self._remember(stored)
                return stored
            material = await asyncio.to_thread(renew, stored, self.sans, _now(), self.config)
            logger.info("Renewing the webhook certificate: %s.", reason)
            try:
                if secret is None:
                    await (await self._api()).request(
                        "POST", self._path.rsplit("/", 1)[0], self._secret(material)
                    )
                else:
                    version = secret.get("metadata", {}).get("resourceVersion")
                    body = {
                        "metadata": {"resourceVersion": version},
                        "data": to_secret_data(material),
                    }
                    await (await self._api()).request(
                        "PATCH", self._path, body, content_type=MERGE_PATCH
                    )
            except KubeAPIError as exc:
                if exc.status == 409:  # another replica wrote first: use theirs
                    continue
                raise
            self._remember(material)
            return material
        raise KubeAPIError(409, f"secret {self.config.cert_secret} keeps changing under us")

    def _remember(self, material: CertMaterial) -> None:
        self._secret_due = time.monotonic() + self.max_interval
        if self._current is None or material.cert != self._current.cert:
            logger.info(
                "Serving webhook certificate %s, valid until %s.",
                material.fingerprint,
                material.not_after.isoformat(),
            )
        self._current = material

    def _secret(self, material: CertMaterial) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.config.cert_secret,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "carrier-operator"},
            },
            "type": "Opaque",
            "data": to_secret_data(material),
        }

    async def publish_ca_bundle(self, bundle: bytes) -> None:
        """Set ``caBundle`` on every webhook of both configurations (absent ones are skipped)."""
        encoded = base64.b64encode(bundle).decode("ascii")
        missing: list[str] = []
        for group_path, name in self.configurations():
            path = f"/apis/admissionregistration.k8s.io/v1/{group_path}/{name}"
            found = await (await self._api()).get(path)
            if found is None:
                missing.append(name)
                # Once when it goes missing, not at every check.
                level = logging.DEBUG if name in self._missing else logging.WARNING
                logger.log(
                    level,
                    "Webhook configuration %s/%s not found: caBundle not set.",
                    group_path,
                    name,
                )
                continue
            webhooks = found.get("webhooks") or []
            ops: list[dict[str, Any]] = []
            for index, webhook in enumerate(webhooks):
                if webhook.get("clientConfig", {}).get("caBundle") == encoded:
                    continue
                ops.append(
                    {"op": "test", "path": f"/webhooks/{index}/name", "value": webhook.get("name")}
                )
                if "clientConfig" in webhook:
                    ops.append(
                        {
                            "op": "add",
                            "path": f"/webhooks/{index}/clientConfig/caBundle",
                            "value": encoded,
                        }
                    )
                else:
                    ops.append(
                        {
                            "op": "add",
                            "path": f"/webhooks/{index}/clientConfig",
                            "value": {"caBundle": encoded},
                        }
                    )
            if ops:
                await (await self._api()).request("PATCH", path, ops, content_type=JSON_PATCH)
                logger.info("caBundle set on %s %s.", group_path, name)
        self._missing = missing
