"""Child processes in their own process groups, always killed, and deadline-bounded waits."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

_LIVE: set[subprocess.Popen[bytes]] = set()


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new process group, output to ``log`` (or nowhere)."""
    out: IO[bytes] | int = subprocess.DEVNULL
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = log.open("wb")
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if not isinstance(out, int):
            out.close()
    _LIVE.add(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
    _LIVE.discard(proc)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def stop_all() -> None:
    for proc in list(_LIVE):
        stop(proc, grace=3.0)


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def cleanup() -> Iterator[None]:
    """Kill every process started through :func:`spawn`, whatever happens (SIGTERM included)."""

    def _on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        yield
    finally:
        stop_all()
        signal.signal(signal.SIGTERM, previous)


def interrupt(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int | None:
    """SIGINT (a profiler writes its output on it), then :func:`stop` if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return stop(proc, grace=2)
    _LIVE.discard(proc)
    return code
