"""Thin, bounded wrappers around docker, kind, helm and kubectl for the e2e suite."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".cache" / "tools" / "bin"


def tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return str(TOOLS / name) if (TOOLS / name).exists() else None


def run(*cmd: str, timeout: float = 300, input: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, input=input, check=False
    )
    if check and done.returncode:
        raise AssertionError(f"{' '.join(cmd[:4])}... failed ({done.returncode}): {done.stderr}")
    return done.stdout


class Kube:
    """kubectl against one kind cluster's kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = tool("kubectl") or "kubectl"

    def __call__(self, *args: str, timeout: float = 120, input: str | None = None) -> str:
        return run(
            self.kubectl, "--kubeconfig", str(self.kubeconfig), *args, timeout=timeout, input=input
        )

    def apply(self, *manifests: dict[str, Any]) -> None:
        self("apply", "-f", "-", input=yaml.safe_dump_all(manifests))

    def get(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self("get", "-o", "json", *args)))

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, port: int) -> Iterator[int]:
        """A local port forwarded to ``target``'s ``port`` while the block runs."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            local = int(sock.getsockname()[1])
        process = subprocess.Popen(
            [
                self.kubectl,
                "--kubeconfig",
                str(self.kubeconfig),
                "-n",
                namespace,
                "port-forward",
                target,
                f"{local}:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            poll(lambda: _connects(local), timeout=30, what=f"port-forward to {target}")
            yield local
        finally:
            process.terminate()
            process.wait(timeout=10)


def _connects(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def poll(check: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    """Retry ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:  # a failed kubectl: retry until the deadline
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
