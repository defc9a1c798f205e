"""CPU and memory of a process tree, read from /proc in a background thread.

CPU = utime + stime + cutime + cstime of the process (reaped children included) plus the same
of its live descendants. Memory = the sum of PSS over the tree: ``carrier-sidecar`` forks its
probe port's process, whose pages are mostly the parent's, and a sum of RSS would count them
twice; PSS shares each page among the processes mapping it, so the sum is what the tree holds.
The peak is the larger of the sampled maximum and the leader's VmHWM (the kernel's own
high-water mark of its RSS).
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                for child in children:
                    found.append(int(child))
                    todo.append(int(child))
        except OSError:
            continue
    return found


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) seconds: utime+cutime, stime+cstime (fields 14-17 of /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[13])) / TICK, (int(fields[12]) + int(fields[14])) / TICK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def run_queue_wait(pid: int) -> float:
    """Seconds the main thread spent runnable but not running (/proc/PID/schedstat, 2nd field)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def tree_cpu(pid: int) -> tuple[float, float]:
    """(user, system) seconds of the process and its live descendants."""
    user, system = cpu_split(pid)
    for child in _descendants(pid):
        try:
            u, s = cpu_split(child)
        except OSError:
            continue
        user, system = user + u, system + s
    return user, system


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def tree_pss_kb(pid: int) -> int:
    """PSS of the process and its live descendants: pages shared by a fork counted once."""
    total = pss_kb(pid)
    for child in _descendants(pid):
        try:
            total += pss_kb(child)
        except OSError:
            continue
    return total


@dataclass
class Sampler:
    """Samples (monotonic time, tree CPU seconds, tree PSS kB) every ``every`` seconds."""

    pid: int
    every: float = 0.02
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    sys_cpu: list[float] = field(default_factory=list)
    waited: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name=f"sampler-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        try:
            (user, system), rss = tree_cpu(self.pid), tree_pss_kb(self.pid)
        except OSError:
            return
        self.times.append(time.monotonic())
        self.cpu.append(user + system)
        self.sys_cpu.append(system)
        self.waited.append(run_queue_wait(self.pid))
        self.rss.append(rss)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def cpu_at(self, when: float, system_only: bool = False, waited: bool = False) -> float:
        """CPU seconds at monotonic time ``when``, linearly interpolated between samples
        (``waited``: seconds spent runnable but waiting for a core instead)."""
        series = self.waited if waited else self.sys_cpu if system_only else self.cpu
        if not self.times:
            return 0.0
        i = bisect.bisect_left(self.times, when)
        if i <= 0:
            return series[0]
        if i >= len(self.times):
            return series[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        c0, c1 = series[i - 1], series[i]
        return c0 + (c1 - c0) * ((when - t0) / (t1 - t0) if t1 > t0 else 0.0)

    def peak_rss_kb(self) -> int:
        sampled = max(self.rss, default=0)
        try:
            return max(sampled, status_kb(self.pid, "VmHWM"))
        except OSError:
            return sampled
