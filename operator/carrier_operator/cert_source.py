"""Where the webhook's serving certificate comes from: the one interface its two sources
implement (cert-manager's mounted Secret, :mod:`cert_directory`; the operator's own CA,
:mod:`cert_self_signed`), as the EKS pod-identity webhook's ``pkg/cert`` keeps one file per
source.
"""

from __future__ import annotations

from .pki import CertMaterial


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
