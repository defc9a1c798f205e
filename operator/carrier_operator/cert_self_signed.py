"""Self-signed mode: the operator's own CA and serving cert in one Secret, shared by replicas.

The first replica creates it, the others reuse it while it is valid. The CA lives long and only
the leaf rotates (``renew_before`` ahead of expiry), so the caBundle rarely changes; when the CA
itself is renewed, the bundle carries the old CA too until it expires, so replicas still serving
an old leaf stay trusted while they catch up. The caBundle of both webhook configurations is
kept current.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .cert_source import CertSource
from .config import OperatorSettings
from .kubeapi import JSON_PATCH, MERGE_PATCH, KubeAPI, KubeAPIError
from .pki import (
    CertMaterial,
    from_secret_data,
    now,
    renew,
    renewal_reason,
    to_secret_data,
    webhook_sans,
)

logger = logging.getLogger(__name__)


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
        due = self._current.not_after - self._renew_before() - now()
        return max(1.0, min(self.max_interval, due.total_seconds()))

    async def _ensure(self) -> CertMaterial:
        """Reuse the Secret's material if valid, else renew it there (first writer wins)."""
        for _attempt in range(5):
            secret = await (await self._api()).get(self._path)
            stored = from_secret_data(secret.get("data")) if secret else None
            reason = renewal_reason(stored, self.sans, now(), self._renew_before())
            if reason is None and stored is not None:
                self._remember(stored)
                return stored
            material = await asyncio.to_thread(renew, stored, self.sans, now(), self.config)
            logger.info("renewing the webhook certificate", extra={"reason": reason})
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
                "serving the webhook certificate",
                extra={
                    "fingerprint": material.fingerprint,
                    "valid_until": material.not_after.isoformat(),
                },
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
                logger.info("caBundle set", extra={"kind": group_path, "configuration": name})
        self._missing = missing
