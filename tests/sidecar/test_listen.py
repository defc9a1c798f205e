"""``:PORT`` is every address family: the pure plan, real sockets, and the real sidecar process."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from carrier_sidecar.listen import Bind, bind_plan, describe, listen_sockets
from tests.support.dual_stack import ipv6_loopback, requires_ipv6, statuses
from tests.support.queues import make_queue
from tests.support.servers import MotoServer, eventually, free_port
from tests.support.sidecars import env_for, sidecar_process


@pytest.mark.parametrize("host", ["", "*", "::", "[::]"])
def test_wildcards_are_one_dual_stack_socket_or_ipv4_without_ipv6(host: str) -> None:
    assert bind_plan(host, ipv6=True) == [Bind(socket.AF_INET6, "::", dual_stack=True)]
    assert bind_plan(host, ipv6=False) == [Bind(socket.AF_INET, "0.0.0.0")]


@pytest.mark.parametrize(
    ("host", "bind"),
    [
        ("0.0.0.0", Bind(socket.AF_INET, "0.0.0.0")),  # explicit IPv4: kept as asked
        ("127.0.0.1", Bind(socket.AF_INET, "127.0.0.1")),
        ("::1", Bind(socket.AF_INET6, "::1")),
        ("localhost", Bind(socket.AF_UNSPEC, "localhost")),  # resolved when opened
    ],
)
def test_literal_addresses_and_names_bind_what_they_name(host: str, bind: Bind) -> None:
    assert bind_plan(host, ipv6=True) == [bind]


def _accepts(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        try:
            client.connect((host, port))
        except OSError:
            return False
    return True


def test_port_zero_gives_one_port_for_every_family() -> None:
    sockets = listen_sockets("", 0)
    try:
        for sock in sockets:
            sock.listen()
        port = sockets[0].getsockname()[1]
        assert port > 0
        assert _accepts("127.0.0.1", port)
        if ipv6_loopback():
            assert _accepts("::1", port)
            assert describe(sockets) == f"[::]:{port}"
    finally:
        for sock in sockets:
            sock.close()


def test_explicit_ipv4_does_not_listen_on_ipv6() -> None:
    sockets = listen_sockets("127.0.0.1", 0)
    try:
        sockets[0].listen()
        port = sockets[0].getsockname()[1]
        assert _accepts("127.0.0.1", port)
        if ipv6_loopback():
            assert not _accepts("::1", port)
    finally:
        for sock in sockets:
            sock.close()


def test_a_busy_port_raises_and_leaves_nothing_open() -> None:
    busy = listen_sockets("", 0)
    try:
        busy[0].listen()
        port = busy[0].getsockname()[1]
        with pytest.raises(OSError, match="in use") as raised:
            listen_sockets("", port)
        assert raised.value.errno == errno.EADDRINUSE
    finally:
        for sock in busy:
            sock.close()


@requires_ipv6
async def test_sidecar_probes_answer_on_ipv4_and_ipv6(
    moto: MotoServer, sqs: Any, queue_name: str, sidecar_command: list[str]
) -> None:
    await make_queue(sqs, queue_name)
    port = free_port()
    env = env_for(
        moto, queue_name, f"http://127.0.0.1:{free_port()}/hook", CARRIER_HTTP_ADDR=f":{port}"
    )
    async with sidecar_process(sidecar_command, env) as sidecar:
        await eventually(lambda: sidecar.logged("probe server listening"), 30, "the probe server")
        assert await statuses(port, "/healthz") == {"127.0.0.1": 200, "::1": 200}
        metrics = await statuses(port, "/metrics")
        assert metrics == {"127.0.0.1": 200, "::1": 200}
        assert any(f"[::]:{port}" in line for line in sidecar.lines), sidecar.lines[:5]
