"""The signals that stop the sidecar gracefully: one list for ``main`` (caught from its first
line), the event loop's handlers (:mod:`.app`) and the probe process, which ignores them."""

from __future__ import annotations

import signal
from typing import Final

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
