"""Start-up housekeeping (:mod:`carrier_sidecar.memory`) in a real interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json
from carrier_sidecar.memory import hold_collector, settle
hold_collector()
held = gc.isenabled()
junk = [[i] for i in range(1000)]
settle()
print(json.dumps({"held": held, "after": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


def test_the_collector_waits_for_settle_which_freezes_the_start_up_objects() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["held"] is False, "collection is paused while start-up builds"
    assert seen["after"] is True, "and running again once it is settled"
    assert seen["frozen"] > 1000, done.stderr
