"""The real process raises its soft open-file limit to the hard one, as Go programs do.

Started the way containerd 2 starts a container (a low soft limit under a higher hard one), the
sidecar must not stay at the soft limit a burst of probe connections could use up.
"""

from __future__ import annotations

import resource
import signal
import sys
from pathlib import Path
from typing import Any

from carrier_sidecar.fd_limit import connection_cap
from tests.support.queues import make_queue
from tests.support.servers import MotoServer, eventually, free_port
from tests.support.sidecars import env_for, sidecar_process

LOW_SOFT = 256
# Lowers the soft limit, then runs the real entry point (the limits survive into main()).
WRAPPER = f"""
import resource, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, ({LOW_SOFT}, hard))
from carrier_sidecar.__main__ import main
sys.exit(main())
"""


def open_files_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line in /proc/PID/limits")


async def test_a_low_soft_limit_is_raised_to_the_hard_one(
    moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard > LOW_SOFT, "this machine's hard limit leaves nothing to raise"
    await make_queue(sqs, queue_name)
    env = env_for(
        moto,
        queue_name,
        f"http://127.0.0.1:{free_port()}/hook",
        CARRIER_HTTP_ADDR=f"127.0.0.1:{free_port()}",
    )
    async with sidecar_process([sys.executable, "-c", WRAPPER], env) as sidecar:
        await eventually(lambda: sidecar.logged('"receiving"'), 30, "the sidecar to receive")
        assert open_files_limits(sidecar.proc.pid) == (hard, hard)
        assert sidecar.logged("open-file limit raised")
        assert sidecar.logged(f'"soft_before": {LOW_SOFT}')
        sidecar.proc.send_signal(signal.SIGTERM)
        assert await sidecar.wait(20) == 0


def test_the_probe_port_cap_is_a_share_of_the_limit_within_bounds() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        for limit, cap in ((1024, 256), (100, 64), (524288, 4096), (8192, 2048)):
            if limit > hard:
                continue
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
            assert connection_cap() == cap, limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
