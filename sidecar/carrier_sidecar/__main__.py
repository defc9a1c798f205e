"""``carrier-sidecar`` / ``python -m carrier_sidecar``: settings → run → exit code (2 = bad config)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .settings import ConfigError, Settings, env_names, unknown_variables

USAGE = """\
usage: carrier-sidecar [--help | --version]

Receives messages from an SQS queue and POSTs each one to a webhook.
Configured only through the environment (the Go Carrier's CARRIER_* variables):

{variables}

Exit codes: 0 stopped by SIGTERM/SIGINT, 1 unexpected error, 2 bad configuration,
3 webhook health check offline, 128+N a second signal N (immediate exit).
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in {"-V", "--version"}:
        print(f"carrier-sidecar {__version__}")
        return 0
    if args:
        names = "\n".join(f"  {env}" for _, env in env_names())
        print(
            USAGE.format(variables=names),
            file=sys.stdout if args[0] in {"-h", "--help"} else sys.stderr,
        )
        return 0 if args[0] in {"-h", "--help"} else 2
    try:
        settings = Settings.load()
    except ConfigError as exc:
        return _config_error(exc)

    from .logs import configure

    configure(settings.log_level, settings.enable_colorized_logging)
    log = logging.getLogger("carrier")
    for name in unknown_variables(os.environ):
        log.warning("unknown variable ignored (a typo?)", extra={"variable": name})
    try:
        return _run_loop(settings)
    except ConfigError as exc:
        return _config_error(exc)
    except KeyboardInterrupt:
        return 130


def _run_loop(settings: Settings) -> int:
    from .app import run

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the sidecar extra
        return asyncio.run(run(settings))
    return uvloop.run(run(settings))


def _config_error(exc: ConfigError) -> int:
    text = " ".join(str(exc).split())
    print(f"carrier-sidecar: {text}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
