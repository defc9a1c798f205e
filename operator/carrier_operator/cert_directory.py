"""cert-manager mode: ``tls.crt``/``tls.key``/``ca.crt`` read from a mounted directory; the
caBundle is left to cert-manager's CA injector.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

from .cert_source import CertSource
from .pki import (
    CertMaterial,
    key_matches,
)

logger = logging.getLogger(__name__)


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
            logger.warning(
                "cannot read the webhook certificate",
                extra={"folder": str(self.folder), "error": str(exc)},
            )
            return None
        if digest == self._digest:
            self._signature = signature
            return None
        if not key_matches(material):
            logger.warning(
                "webhook certificate mid-update (key ≠ cert)", extra={"folder": str(self.folder)}
            )
            return None
        self._signature, self._digest = signature, digest
        return material

    def next_check(self) -> float:
        return self.interval
