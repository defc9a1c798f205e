"""How much memory a sidecar with given delivery settings can need: one formula, one home.

The sidecar holds at most ``receivers x (workers + batch size)`` messages (``receiver.Slots``:
each receiver refills its batch while its workers POST), and a message is at most 1 MiB. Each
held body costs more than its size in RSS (the SQS response, the decoded string, the encoded
POST body, allocator slack), so the bound is ``base + factor x held x max message size``, with
``base`` and ``factor`` measured on the real process (``python -m bench.held_memory``,
docs/injector.md). The injector derives the sidecar's memory request and limit from it.
"""

from __future__ import annotations

import math
from typing import Final

from .settings import Settings

MIB: Final = 1024 * 1024
MAX_MESSAGE_BYTES: Final = 1_048_576  # SQS's maximum, attributes included
BASE_BYTES: Final = (
    84 * MIB
)  # idle: ~62 MB of the sidecar + ~11 MB its probe process holds, plus margin
HELD_FACTOR: Final = 4.0  # worst measured 3.5 (batch 10: a 10 MiB response decoded at once)


def held_messages_for(receivers: int, workers: int, batch: int) -> int:
    return receivers * (workers + batch)


def memory_bound_for(receivers: int, workers: int, batch: int) -> int:
    """Bytes of RSS the sidecar stays under with 1 MiB messages (the limit to give it)."""
    held = held_messages_for(receivers, workers, batch)
    return BASE_BYTES + math.ceil(HELD_FACTOR * held * MAX_MESSAGE_BYTES)


def memory_bound(settings: Settings) -> int:
    return memory_bound_for(
        settings.sqs_receivers, settings.sqs_receiver_workers, settings.sqs_batch_size
    )


def as_mebibytes(size: int) -> str:
    """A Kubernetes quantity, rounded up to whole MiB (``"86Mi"``)."""
    return f"{math.ceil(size / MIB)}Mi"
