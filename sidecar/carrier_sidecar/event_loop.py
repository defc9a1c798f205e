"""Run a coroutine on uvloop (in the sidecar extra), or on asyncio's own loop without it: for
the sidecar and for its probe process alike."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_event_loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the sidecar extra
        return asyncio.run(coro)
    return uvloop.run(coro)
