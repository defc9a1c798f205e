"""Resident memory housekeeping for a long-lived, mostly idle process.

The sidecar's idle RSS is dominated by what start-up imports and builds; :func:`settle` gives back
what start-up left behind (measured with ``python -m bench.memory``: ~0.4 MB less idle RSS). The
glibc step is skipped quietly on other C libraries. (Capping malloc arenas was measured too and
saved nothing more once the heap is trimmed.)
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


def settle() -> None:
    """Once start-up is done: collect its garbage, freeze the survivors, return free pages.

    ``gc.freeze`` moves the start-up objects (modules, models, clients) out of the collector's
    generations, so later full collections do not walk them again (less CPU, not more).
    """
    gc.collect()
    gc.freeze()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
