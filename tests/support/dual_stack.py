"""Probing a listener over both loopbacks, as kubelets of an IPv4 and an IPv6 cluster would."""

from __future__ import annotations

import socket
import ssl

import aiohttp
import pytest

LOOPBACKS = ("127.0.0.1", "::1")


def ipv6_loopback() -> bool:
    """Whether ``::1`` can be bound here (containers without IPv6 cannot)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


requires_ipv6 = pytest.mark.skipif(
    not ipv6_loopback(), reason="::1 cannot be bound on this machine (no IPv6 loopback)"
)


def url(host: str, port: int, path: str, scheme: str = "http") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}{path}"


async def status_on(
    host: str,
    port: int,
    path: str,
    *,
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    method: str = "GET",
) -> int | None:
    """HTTP status from ``host``, or None when nothing accepts the connection."""
    scheme = "https" if context is not None else "http"
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False)
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.request(
                method, url(host, port, path, scheme), server_hostname=server_hostname
            ) as response,
        ):
            await response.read()
            return response.status
    except aiohttp.ClientConnectionError:
        return None


async def statuses(
    port: int,
    path: str,
    *,
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> dict[str, int | None]:
    """``{"127.0.0.1": 200, "::1": 200}``: the answer on each loopback."""
    return {
        host: await status_on(host, port, path, context=context, server_hostname=server_hostname)
        for host in LOOPBACKS
    }
