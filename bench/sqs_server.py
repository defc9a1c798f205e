"""The SQS-compatible server under the benchmark: fauxqs (fast) on loopback, moto as a fallback.

fauxqs 1.x (npm, Node 20) is flat with queue depth; stock moto costs O(depth) per call and is
only usable with a few hundred messages. Both are started on 127.0.0.1 and killed on exit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import AWS_TEST_ENV, MotoServer, free_port

from . import procs

ROOT = Path(__file__).resolve().parent.parent
NODE_PREFIX = ROOT / ".cache" / "bench-node"
FAUXQS_APP = NODE_PREFIX / "node_modules" / "fauxqs" / "dist" / "app.js"
LAUNCHER = Path(__file__).resolve().parent / "fauxqs_loopback.mjs"
FAUXQS_SPEC = "fauxqs@1"


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install_fauxqs() -> Path:
    """``npm install --prefix .cache/bench-node fauxqs@1`` unless already there (idempotent)."""
    if not FAUXQS_APP.exists():
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(NODE_PREFIX),
                FAUXQS_SPEC,
                "--no-audit",
                "--no-fund",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
        )
    return FAUXQS_APP


def fauxqs_version() -> str:
    meta = json.loads((FAUXQS_APP.parent.parent / "package.json").read_text())
    return str(meta["version"])


@dataclass
class SqsServer:
    """A running server; ``counts()`` is None when it cannot count requests itself."""

    kind: str
    version: str
    endpoint: str
    proc: subprocess.Popen[bytes] | None = None
    control: str | None = None
    moto: MotoServer | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid
        if self.moto is not None and self.moto.proc is not None:
            return self.moto.proc.pid
        return None

    def counts(self) -> dict[str, int] | None:
        if self.control is None:
            return None
        with urllib.request.urlopen(f"{self.control}/counts", timeout=5) as resp:
            return {str(k): int(v) for k, v in json.loads(resp.read()).items()}

    def reset_counts(self) -> None:
        if self.control is not None:
            req = urllib.request.Request(f"{self.control}/reset", method="POST", data=b"")
            with urllib.request.urlopen(req, timeout=5):
                pass

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
        if self.moto is not None:
            self.moto.stop()


def start_fauxqs(log: Path | None = None) -> SqsServer:
    app = install_fauxqs()
    port, ctl = free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "FAUXQS_PORT": str(port),
        "FAUXQS_LOGGER": "false",
        "BENCH_CTL_PORT": str(ctl),
        "BENCH_FAUXQS_APP": str(app),
        **AWS_TEST_ENV,
    }
    node = shutil.which("node") or "node"
    proc = procs.spawn([node, str(LAUNCHER)], env=env, log=log)
    server = SqsServer(
        kind="fauxqs",
        version=fauxqs_version(),
        endpoint=f"http://127.0.0.1:{port}",
        proc=proc,
        control=f"http://127.0.0.1:{ctl}",
    )

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"fauxqs exited with {proc.returncode} (log: {log})")
        try:
            server.counts()
            with urllib.request.urlopen(server.endpoint, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    procs.wait_until(answers, 30, "fauxqs")
    return server


def start_moto() -> SqsServer:
    moto = MotoServer()
    moto.start()
    from importlib.metadata import version

    return SqsServer(
        kind="moto",
        version=version("moto"),
        endpoint=moto.endpoint,
        moto=moto,
        notes=[
            "moto fallback (node/npm missing): O(queue depth) per call, small N only; SQS "
            "requests counted from the sidecar's /metrics (`carrier_sqs_requests_total`), "
            "n/a for a sidecar without it"
        ],
    )


def start(prefer: str = "auto", log: Path | None = None) -> SqsServer:
    """fauxqs when node/npm are here (or ``prefer='fauxqs'``), else moto."""
    if prefer == "moto" or (prefer == "auto" and not node_available()):
        return start_moto()
    try:
        return start_fauxqs(log)
    except (OSError, subprocess.SubprocessError) as exc:
        if prefer == "fauxqs":
            raise
        server = start_moto()
        server.notes.insert(0, f"fauxqs could not be installed or started ({exc}): moto instead")
        return server
