"""The sockets behind a listen address: ``:PORT`` means every address family the machine has.

On an IPv6-only cluster the kubelet probes the pod's IPv6 address, on an IPv4 one its IPv4
address, on a dual-stack one either. So a wildcard (``:PORT``, ``*:PORT`` or ``[::]:PORT``)
opens one IPv6 socket with IPv4 mapped onto it (``IPV6_V6ONLY`` off: one socket, one port, both
families), and falls back to plain IPv4 where the kernel has no IPv6. A literal address or a
host name binds exactly what it names. Every listener of the project (the sidecar's probes, the
operator's liveness endpoint and admission webhooks) opens its sockets here; the operator
imports this module, which is why it lives on the sidecar side (no kopf, no kubernetes).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

WILDCARD_HOSTS = frozenset({"", "*", "::"})


@dataclass(frozen=True)
class Bind:
    """One socket to open: its family, the host to bind, and whether IPv4 is mapped onto it."""

    family: socket.AddressFamily
    host: str
    dual_stack: bool = False


def bind_plan(host: str, *, ipv6: bool) -> list[Bind]:
    """Pure: the sockets for ``host`` (the part before ``:PORT``), given whether IPv6 exists.

    A host name (``localhost``) is resolved when the sockets are opened: ``AF_UNSPEC`` here.
    """
    text = host.strip().strip("[]")
    if text in WILDCARD_HOSTS:
        if ipv6:
            return [Bind(socket.AF_INET6, "::", dual_stack=True)]
        return [Bind(socket.AF_INET, "0.0.0.0")]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return [Bind(socket.AF_UNSPEC, text)]
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return [Bind(family, text)]


def ipv6_supported() -> bool:
    """Whether this kernel can open a dual-stack IPv6 socket (``ipv6.disable=1`` cannot)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            probe.bind(("::", 0))
    except OSError:
        return False
    return True


def listen_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound, non-blocking TCP sockets for ``host:port`` (``listen()`` is the server's job).

    Port 0 picks a free port once: every further socket (a name resolving to both ::1 and
    127.0.0.1) reuses it, so a listener has one port whatever its families. Raises
    :class:`OSError` (e.g. the port is busy) after closing whatever it had opened.
    """
    opened: list[socket.socket] = []
    try:
        for bind in bind_plan(host, ipv6=ipv6_supported()):
            for family, address in _addresses(bind, port):
                sock = _bound(family, address, dual_stack=bind.dual_stack)
                opened.append(sock)
                if port == 0:
                    port = int(sock.getsockname()[1])
    except OSError:
        for sock in opened:
            sock.close()
        raise
    return opened


def _addresses(bind: Bind, port: int) -> list[tuple[socket.AddressFamily, tuple[str, int]]]:
    if bind.family != socket.AF_UNSPEC:
        return [(bind.family, (bind.host, port))]
    found = socket.getaddrinfo(bind.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    unique: dict[tuple[socket.AddressFamily, str], None] = {}
    for family, _type, _proto, _name, address in found:
        if family in (socket.AF_INET, socket.AF_INET6):
            unique[(family, str(address[0]))] = None
    return [(family, (addr, port)) for family, addr in unique]


def _bound(
    family: socket.AddressFamily, address: tuple[str, int], *, dual_stack: bool
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # Explicit either way: net.ipv6.bindv6only may default to 1 on some hosts.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def describe(sockets: list[socket.socket]) -> str:
    """``[::]:9102`` / ``0.0.0.0:9102, [::1]:9102``: what a log line says is listening."""
    parts = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        parts.append(f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}")
    return ", ".join(parts)
