"""A received message, and the record the delivery engine keeps of it while it is held.

Pure data, imported by the SQS port (which returns messages), the delivery engine (which holds
them) and the FIFO sequencer (which orders them), so none of those depends on another for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]
"""One entry of ReceiveMessage's ``Messages``, as botocore returns it."""


@dataclass(slots=True, eq=False)
class Held:
    message: Message
    handle: str
    message_id: str
    give: Callable[[], None]
    """Returns the slot to the receiver that took it."""
    received_at: float
    """When the receive was asked (monotonic): no later than SQS started the visibility clock."""
    gate: asyncio.Semaphore
    """The receiver's POST permits (``workers`` of them)."""
