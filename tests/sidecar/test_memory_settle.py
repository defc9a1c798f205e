"""Start-up housekeeping (:func:`carrier_sidecar.memory.settle`) in a real interpreter."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from carrier_sidecar.memory import settle
junk = [[i] for i in range(1000)]
settle()
print(gc.get_freeze_count())
"""


def test_settle_freezes_the_start_up_objects() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(done.stdout) > 1000, done.stderr
