"""``python -m bench.probe_alone PORT``: the sidecar's probe server alone in a process.

What a separate probe process would give at best: the same :class:`ProbeServer` (shared
``/metrics`` renders, the connection cap, the listen backlog) over a fresh :class:`Metrics`,
answering ``/healthz`` and ``/readyz`` true, in a process with nothing else to do. The probe
flood bench floods it instead of the sidecar's port (``--probe-alone``) while the sidecar delivers
with no flood reaching its loop, which separates what the flood costs the sidecar's loop from
what it costs the machine.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from carrier_sidecar.fd_limit import raise_open_files_limit
from carrier_sidecar.metrics import Metrics
from carrier_sidecar.probes import ProbeServer


async def serve(port: int) -> None:
    server = ProbeServer(("127.0.0.1", port), Metrics(), lambda: True, lambda: True)
    await server.start()
    await asyncio.Event().wait()  # until the bench stops the process


def main() -> None:
    raise_open_files_limit()  # as the sidecar does: the connection cap follows the fd limit
    uvloop.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
