"""Resident memory and collector housekeeping for a long-lived, mostly idle process.

Start-up imports ~680 modules and builds the SQS client: hundreds of thousands of objects that
almost all live as long as the process. The cyclic collector would walk them again and again
while they are made (30 to 65 ms of ~0.5 s of start-up CPU in alternating start-ups), so
:func:`hold_collector` pauses it from the first line of ``main`` and :func:`settle` starts it
again once the client exists, before any wait of unbounded length. ``settle`` also gives back
what start-up left behind (``python -m bench.memory``: ~0.4 MB less idle RSS). The glibc step is
skipped quietly on other C libraries. (Capping malloc arenas was measured too and saved nothing
more once the heap is trimmed.)
"""

from __future__ import annotations

import gc
import os
from typing import Any


def _libc() -> Any:
    """glibc through ctypes, or None (musl, macOS: nothing to tune)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        import ctypes  # lazy: only where glibc is present

        return ctypes.CDLL("libc.so.6", use_errno=True)
    except (ValueError, OSError, AttributeError):
        return None


def hold_collector() -> None:
    """No cyclic collection until :func:`settle`: start-up makes objects, it frees few."""
    gc.disable()


def settle() -> None:
    """Once start-up's building is done: collect its garbage, freeze the survivors, restart the
    collector, return free pages.

    ``gc.freeze`` moves the start-up objects (modules, models, clients) out of the collector's
    generations, so later full collections do not walk them again (less CPU, not more).
    """
    gc.collect()
    gc.freeze()
    gc.enable()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
