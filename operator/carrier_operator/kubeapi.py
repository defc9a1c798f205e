"""The few Kubernetes API calls the operator makes itself, over aiohttp.

kopf's own client is private, so the operator carries a tiny one: the serving-cert Secret, the
caBundle of the two webhook configurations, a binding GET while kopf's index is still filling,
``/version`` once, status writes, rollouts, the labelled-pod list and watch (``pods.py``) and a list + watch of nodes
(their kubelet versions, ``nodes.py``).
Credentials are the kubernetes client's: in a pod the service account (the token re-read as it
rotates), elsewhere the current kubeconfig (token, exec plugin or client certificate).
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
# Seconds the client's header is reused: the client refreshes exec tokens 5 minutes before they
# expire and re-reads a service-account token each minute, so this never sends a stale one.
AUTH_REFRESH = 10.0
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class KubeAPIError(Exception):
    """A non-2xx answer; ``status`` is the HTTP status (0 when the API could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status


class KubeAPI:
    """JSON requests to one API server with a bounded timeout; one session, reused.

    Credentials come from a kubernetes-client ``Configuration`` when there is one (kubeconfig or
    in-cluster): the client builds the ``Authorization`` header itself, and its refresh hook
    re-reads a rotated service-account token or re-runs an exec plugin whose token expired.
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        configuration: Any = None,
        ca_file: str | None = None,
        client_cert: tuple[str, str] | None = None,
        verify: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._configuration = configuration  # kubernetes.client.Configuration (untyped)
        self._auth: str | None = None
        self._auth_at: float | None = None
        self._ca_file = ca_file
        self._client_cert = client_cert
        self._verify = verify
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        # Who is asking (the replica's identity): the API server's audit log and tests see it.
        self.user_agent: str | None = None

    @classmethod
    async def from_environment(cls, sa_dir: Path = SA_DIR) -> KubeAPI:
        """In a pod: the service account in ``sa_dir``; elsewhere: the kubeconfig (off the loop)."""
        return await asyncio.to_thread(cls._from_client_config, sa_dir)

    @classmethod
    def _from_client_config(cls, sa_dir: Path) -> KubeAPI:
        from kubernetes import client, config

        configuration = client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST") and (sa_dir / "token").exists():
            loader = config.incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(sa_dir / "token"), cert_filename=str(sa_dir / "ca.crt")
            )
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls.from_configuration(configuration)

    @classmethod
    def from_configuration(cls, configuration: Any) -> KubeAPI:
        """Server, TLS and credentials of a loaded kubernetes-client ``Configuration``."""
        cert = (
            (configuration.cert_file, configuration.key_file)
            if configuration.cert_file and configuration.key_file
            else None
        )
        return cls(
            configuration.host,
            configuration=configuration,
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

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl())
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def _headers(self) -> dict[str, str]:
        if self._configuration is not None:
            now = time.monotonic()
            if self._auth_at is None or now - self._auth_at >= AUTH_REFRESH:
                # Runs the client's refresh hook (off the loop: an exec plugin is a process):
                # an expiring exec-plugin token is fetched anew, a rotated SA token re-read.
                self._auth = await asyncio.to_thread(self._authorization, self._configuration)
                self._auth_at = now
            return {"Authorization": self._auth} if self._auth else {}
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    @staticmethod
    def _authorization(configuration: Any) -> str | None:
        settings = configuration.auth_settings().get("BearerToken") or {}
        value = settings.get("value")
        return str(value) if value else None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        """The decoded JSON answer; None for 404; :class:`KubeAPIError` for other failures."""
        session = self._open()
        headers = await self._headers()
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            async with session.request(
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

    async def list_all(self, path: str, *, page: int = 500) -> list[dict[str, Any]]:
        """Every item of a list, in pages of ``page`` (bounded: at most 1000 pages)."""
        items: list[dict[str, Any]] = []
        token = ""
        for _ in range(1000):
            query = f"?limit={page}&continue={token}" if token else f"?limit={page}"
            answer = await self.get(path + query) or {}
            items += [i for i in answer.get("items") or [] if isinstance(i, dict)]
            token = str((answer.get("metadata") or {}).get("continue") or "")
            if not token:
                break
        return items

    async def server_version(self) -> dict[str, Any]:
        return await self.get("/version") or {}

    async def watch(self, path: str, *, idle_timeout: float) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch (``path`` carries ``watch=true``), one JSON object per line.

        Ends when the server closes the stream (its ``timeoutSeconds``); :class:`KubeAPIError`
        for a refused request (410 Gone included) or a stream silent for ``idle_timeout``.
        """
        session = self._open()
        headers = await self._headers()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=idle_timeout)
        try:
            async with session.get(
                self.server + path, headers=headers, timeout=timeout
            ) as response:
                if response.status >= 300:
                    data: Any = await response.json(content_type=None)
                    message = data.get("message") if isinstance(data, Mapping) else None
                    raise KubeAPIError(response.status, str(message or response.reason))
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            event = json.loads(line)
                            if isinstance(event, dict):
                                yield event
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise KubeAPIError(0, f"watch {path}: {exc or type(exc).__name__}") from exc
