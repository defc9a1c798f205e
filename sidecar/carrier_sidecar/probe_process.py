"""The probe port in a process of its own, so that a flood on it never reaches the delivering loop.

Anything on the pod network can open 1 000 connections to the probe port at once. Served in the
delivering event loop, each wave's accepts, reads and writes queued among the deliveries'
callbacks: with a sidecar busy delivering (an instant worker, ~2 500 messages/s) the kubelet's
``/healthz`` waited 0.2-1 s behind each wave of 1 000 (p99; two probes timed out); served from
this process, 52-77 ms (docs/benchmarks.md, "Probe flood"). The price is ~10 MB of pod memory.

:func:`fork` runs at the top of ``main``, before the heavy imports (pydantic, botocore, aiohttp)
and before any thread or event loop exists, so forking is safe and the child holds little; the
modules it serves with (asyncio, httptools, uvloop) are imported just before, so their pages stay
shared. The child waits for :meth:`ProbeProcess.hand_over`: the bound listening sockets (passed
as file descriptors) and what it needs to know. It answers ``/healthz`` and ``/readyz`` from the
state the sidecar sends every :data:`.probe_channel.STATE_EVERY` seconds (a sidecar whose loop
has sent nothing for :data:`.probe_child.STALE_AFTER` is not live) and forwards ``/metrics`` and
``/drain`` to the sidecar (:mod:`.probe_link`; the child's side is :mod:`.probe_child`). It
ignores the stop signals (the sidecar still drains behind a live port) and exits when the
sidecar's end of the channel closes, however the sidecar ended.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import time
from typing import Final, NoReturn

from .stop_signals import STOP_SIGNALS

REAP_BOUND: Final = 2.0  # the sidecar waits this long for the child to exit, then kills it


class ProbeProcess:
    """The sidecar's handle on its probe process, from the fork to the reaping."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self._reaped = False

    def hand_over(
        self, sockets: list[socket.socket], *, drain: bool, log_level: str, colour: bool
    ) -> None:
        """Give the child the bound port; the sidecar's copies of the sockets are closed."""
        setup = {"drain": drain, "log_level": log_level, "colour": colour}
        socket.send_fds(self.channel, [json.dumps(setup).encode()], [s.fileno() for s in sockets])
        for sock in sockets:
            sock.close()

    def dismiss(self) -> None:
        """Close the channel (the child exits on it) and reap the child, killing it if late."""
        with contextlib.suppress(OSError):
            self.channel.close()
        if self._reaped:
            return
        self._reaped = True
        deadline = time.monotonic() + REAP_BOUND
        while time.monotonic() < deadline:
            try:
                exited, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return  # already reaped
            if exited:
                return
            time.sleep(0.01)  # a few milliseconds: the child's own shutdown
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def fork() -> ProbeProcess:
    """Fork the probe process (call before any thread or event loop exists)."""
    # What the child serves with, imported before the fork: its pages stay shared.
    with contextlib.suppress(ImportError):  # uvloop is in the sidecar extra
        import uvloop  # noqa: F401
    from . import logs, probe_child  # noqa: F401

    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; it ends in os._exit
        ours.close()
        _child(theirs)
    theirs.close()
    return ProbeProcess(pid, ours)


def _child(channel: socket.socket) -> NoReturn:  # pragma: no cover - runs in the forked child
    code = 1
    try:
        for sig in STOP_SIGNALS:  # the sidecar's signals; this process follows the channel
            signal.signal(sig, signal.SIG_IGN)
        gc.freeze()  # what was inherited stays shared: the collector never writes to its pages
        gc.enable()  # main holds its collector until start-up settles; this process has no such
        from .probe_child import serve  # only now: the fork copied as little as possible

        code = serve(channel)
    finally:
        os._exit(code)  # never the parent's atexit handlers, never its buffers twice
