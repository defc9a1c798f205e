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


class LibraryErrorsOnce(logging.Filter):
    """botocore's credential refresh logs a warning *with its traceback* on every call while it
    fails (a missing web identity token, STS down): ~1.8 KB per SQS call. Library records become
    one line (the exception as an ``error`` field, no traceback), and each distinct one is let
    through once per :attr:`window` seconds. Our own records pass untouched."""

    LIBRARIES = ("botocore", "aiobotocore", "aiohttp", "asyncio")

    def __init__(self, window: float = 300.0, remember: int = 256) -> None:
        super().__init__()
        self.window = window
        self._remember = remember
        self._seen: dict[tuple[str, str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.LIBRARIES):
            return True
        error = ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            record.error = error
            record.exc_info = None
            record.exc_text = None
        key = (record.name, record.getMessage(), error)
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last < self.window:
            return False
        if len(self._seen) >= self._remember:
            self._seen.clear()
        self._seen[key] = now
        return True


def configure(level: str = "info", colour: bool = False, stream: TextIO | None = None) -> None:
    handler = _Handler(stream or sys.stdout)
    handler.addFilter(LibraryErrorsOnce())
    handler.setFormatter(ColourFormatter() if colour else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (botocore credential lookups, aiohttp access) only when something is wrong.
    for noisy in ("botocore", "aiobotocore", "aiohttp", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
