"""The few Kubernetes API calls the injector makes itself, over aiohttp.

kopf's own client is private, so the injector carries a tiny one: the serving-cert Secret, the
caBundle of the two webhook configurations, a binding GET while kopf's index is still filling,
``/version`` once, and a list + watch of nodes (their kubelet versions). In a pod it uses the service-account token (re-read, since bound tokens
rotate); elsewhere the current kubeconfig; tests point it at kmock.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class KubeAPIError(Exception):
    """A non-2xx answer; ``status`` is the HTTP status (0 when the API could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status


class KubeAPI:
    """JSON requests to one API server with a bounded timeout; one session, reused."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        ca_file: str | None = None,
        client_cert: tuple[str, str] | None = None,
        verify: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._token_file = token_file
        self._token_read = 0.0
        self._ca_file = ca_file
        self._client_cert = client_cert
        self._verify = verify
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        # Who is asking (the replica's identity): the API server's audit log and tests see it.
        self.user_agent: str | None = None

    @classmethod
    def in_cluster(cls) -> KubeAPI:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return cls(
            f"https://{host}:{port}",
            token_file=SA_DIR / "token",
            ca_file=str(SA_DIR / "ca.crt"),
        )

    @classmethod
    async def from_environment(cls) -> KubeAPI:
        """In a pod: the service account; elsewhere: the kubeconfig (read off the loop)."""
        if os.environ.get("KUBERNETES_SERVICE_HOST") and (SA_DIR / "token").exists():
            return cls.in_cluster()
        return await asyncio.to_thread(cls._from_kubeconfig)

    @classmethod
    def _from_kubeconfig(cls) -> KubeAPI:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        auth = configuration.api_key.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() or None
        cert = (
            (configuration.cert_file, configuration.key_file)
            if configuration.cert_file and configuration.key_file
            else None
        )
        return cls(
            configuration.host,
            token=token,
            ca_file=configuration.ssl_ca_cert,
            client_cert=cert,
            verify=bool(configuration.verify_ssl),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        if not self._verify:
            return False
        context = ssl.create_default_context(cafile=self._ca_file)
        if self._client_cert is not None:
            context.load_cert_chain(*self._client_cert)
        return context

    async def _headers(self) -> dict[str, str]:
        if self._token_file is not None and time.monotonic() - self._token_read > 60:
            self._token = (await asyncio.to_thread(self._token_file.read_text)).strip()
            self._token_read = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        """The decoded JSON answer; None for 404; :class:`KubeAPIError` for other failures."""
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl())
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        headers = await self._headers()
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            async with self._session.request(
                method, self.server + path, json=body, headers=headers
            ) as response:
                if response.status == 404:
                    return None
                data: Any = await response.json(content_type=None)
                if response.status >= 300:
                    message = data.get("message") if isinstance(data, Mapping) else None
                    raise KubeAPIError(response.status, str(message or response.reason))
                return data if isinstance(data, dict) else {}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise KubeAPIError(0, f"{method} {path}: {exc or type(exc).__name__}") from exc

    async def get(self, path: str) -> dict[str, Any] | None:
        return await self.request("GET", path)

    async def server_version(self) -> dict[str, Any]:
        return await self.get("/version") or {}

    async def watch_events(self, path: str, *, silence: float) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch (``path`` carries ``watch=true``), one JSON object per line,
        until the server ends the stream; ``silence`` bounds the wait for the next line.
        :class:`KubeAPIError` when it cannot be opened or breaks."""
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl())
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        limits = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout.total, sock_read=silence
        )
        try:
            async with self._session.get(
                self.server + path, headers=await self._headers(), timeout=limits
            ) as response:
                if response.status >= 300:
                    raise KubeAPIError(response.status, response.reason or "watch refused")
                async for line in response.content:
                    if line.strip():
                        event = json.loads(line)
                        if isinstance(event, dict):
                            yield event
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise KubeAPIError(0, f"watch {path}: {exc or type(exc).__name__}") from exc
