"""The real ``carrier-sidecar`` process, one incarnation at a time, and how each one ended."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import AWS_TEST_ENV


def sidecar_executable() -> str:
    found = shutil.which("carrier-sidecar", path=str(Path(sys.executable).parent))
    assert found, "carrier-sidecar is not installed in the venv (pip install -e '.[dev]')"
    return found


@dataclass
class Incarnation:
    """One sidecar process; ``ended_by`` is ``sigterm``, ``sigkill``, ``final`` or ``crash``."""

    number: int
    t_start: float
    ended_by: str | None = None
    t_signal: float | None = None
    t_exit: float | None = None
    returncode: int | None = None


@dataclass
class SidecarRunner:
    """Starts incarnations with the same environment, each posting to ``<webhook>?inc=N``."""

    env: Mapping[str, str]
    webhook_url: str
    log_dir: Path
    incarnations: list[Incarnation] = field(default_factory=list)
    _proc: asyncio.subprocess.Process | None = None

    @property
    def current(self) -> Incarnation:
        return self.incarnations[-1]

    async def start(self) -> Incarnation:
        assert self._proc is None or self._proc.returncode is not None, "one at a time"
        number = len(self.incarnations) + 1
        environ = {k: v for k, v in os.environ.items() if not k.upper().startswith("CARRIER_")}
        environ.update(AWS_TEST_ENV)
        environ.update(self.env)
        environ["CARRIER_WEBHOOK_ENDPOINT"] = f"{self.webhook_url}?inc={number}"
        log = (self.log_dir / f"sidecar-{number}.log").open("wb")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sidecar_executable(),
                env=environ,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            log.close()
        incarnation = Incarnation(number=number, t_start=time.monotonic())
        self.incarnations.append(incarnation)
        return incarnation

    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def end(self, how: str, timeout: float) -> int:
        """Signal the current incarnation (``sigterm``/``final`` → SIGTERM, ``sigkill``) and reap it."""
        assert self._proc is not None
        incarnation = self.current
        incarnation.ended_by = how
        incarnation.t_signal = time.monotonic()
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self._proc.wait(), timeout)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
            incarnation.ended_by = f"{how}-hung"
            code = -9
        incarnation.t_exit = time.monotonic()
        incarnation.returncode = code
        return code

    async def close(self) -> None:
        """Kill whatever still runs (test teardown)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for incarnation in self.incarnations[-2:]:
            path = self.log_dir / f"sidecar-{incarnation.number}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- sidecar {incarnation.number} ({incarnation.ended_by}) ---")
            parts.extend(text)
        return "\n".join(parts)
