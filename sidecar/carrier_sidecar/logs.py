"""Log output: JSON lines on stdout (default) or coloured text for people.

Fields passed with ``extra={...}`` become keys of the JSON object (or ``key=value`` pairs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from typing import Any, TextIO

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}
_RESET = "\x1b[0m"


def extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    millis = int(record.msecs)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ColourFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        colour = _COLOURS.get(record.levelno, "")
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"\x1b[36m{k}\x1b[0m={v}" for k, v in extras(record).items())
        line = (
            f"\x1b[2m{clock}{_RESET} {colour}{record.levelname:<7}{_RESET} "
            f"{record.getMessage()} {fields}".rstrip()
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Handler(logging.StreamHandler[TextIO]):
    """Drops lines written to a closed stdout (``carrier-sidecar | head -1``): they have nowhere
    to go, and a traceback per line would bury the one message that matters on stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError | ValueError):
            return
        super().handleError(record)

    def flush(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            super().flush()


def configure(level: str = "info", colour: bool = False, stream: TextIO | None = None) -> None:
    handler = _Handler(stream or sys.stdout)
    handler.setFormatter(ColourFormatter() if colour else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (botocore credential lookups, aiohttp access) only when something is wrong.
    for noisy in ("botocore", "aiobotocore", "aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
