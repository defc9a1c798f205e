"""FIFO queues: one message of a group at a time, in order; groups run side by side.

SQS (and moto) may return several messages of one group in a receive. They wait here, in order,
each holding its in-flight slot. If one is not delivered (failure, Retry-After, shutdown), the
group's waiting messages are released (visibility 0) rather than delivered ahead of it: the queue
hands the group back, in order, once the failed message is visible again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

from .messages import Held


class Runner(Protocol):
    """The three calls the sequencer makes of the delivery engine (which owns it)."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...
    async def run_one(self, held: Held) -> bool: ...
    def release(self, held: Held) -> None: ...


class GroupSequencer:
    def __init__(self, engine: Runner) -> None:
        self._engine = engine
        self._chains: dict[str, deque[Held]] = {}

    def accept(self, batch: list[Held]) -> None:
        for held in batch:
            group = held.message.get("Attributes", {}).get("MessageGroupId", "")
            chain = self._chains.get(group)
            if chain is None:
                chain = self._chains[group] = deque()
                self._engine.spawn(self._run(group, chain))
            chain.append(held)

    async def _run(self, group: str, chain: deque[Held]) -> None:
        try:
            while chain:
                held = chain.popleft()
                if not await self._engine.run_one(held):
                    break
        finally:
            while chain:
                self._engine.release(chain.popleft())
            del self._chains[group]
