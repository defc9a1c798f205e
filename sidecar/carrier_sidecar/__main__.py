"""``carrier-sidecar`` / ``python -m carrier_sidecar``: settings → run → exit code (2 = bad config).

SIGTERM/SIGINT/SIGHUP/SIGQUIT are caught from the first line of ``main`` (before the heavy imports), so a pod
stopped while it starts still exits 0 instead of dying by the signal. The probe port's process is
forked right after, while the process is still small (:mod:`.probe_process`).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from . import __version__
from .memory import hold_collector
from .probe_process import ProbeProcess
from .probe_process import fork as fork_probe_process
from .stop_signals import STOP_SIGNALS

if TYPE_CHECKING:
    from .probe_link import ProbeLink
    from .settings import Settings

USAGE = """\
usage: carrier-sidecar [--help | --version]

Receives messages from an SQS queue and POSTs each one to a webhook.
Configured only through the environment (the Go Carrier's CARRIER_* variables):

{variables}

Exit codes: 0 stopped by SIGTERM/SIGINT/SIGHUP/SIGQUIT, 1 unexpected error or the probe port's
process lost, 2 bad configuration, 3 webhook health check offline, 128+N a second signal N
(immediate exit).
"""

_early_signals: list[int] = []


def _remember(signum: int, _frame: FrameType | None) -> None:
    _early_signals.append(signum)


def main(argv: Sequence[str] | None = None) -> int:
    hold_collector()  # until memory.settle, once start-up has built what it keeps
    for sig in STOP_SIGNALS:
        signal.signal(sig, _remember)
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in {"-V", "--version"}:
        print(f"carrier-sidecar {__version__}")
        return 0
    probe = fork_probe_process()  # before the heavy imports and any thread: a small child
    try:
        return _main(args, probe)
    finally:
        probe.dismiss()  # the child exits with the channel; reaped here, whatever happened


def _main(args: list[str], probe: ProbeProcess) -> int:
    from .settings import ConfigError, Settings, env_names, unknown_variables

    if args:
        names = "\n".join(f"  {env}" for _, env in env_names())
        helping = args[0] in {"-h", "--help"}
        print(USAGE.format(variables=names), file=sys.stdout if helping else sys.stderr)
        return 0 if helping else 2
    try:
        settings = Settings.load()
    except ConfigError as exc:
        return _config_error(exc)

    from .logs import configure

    configure(settings.log_level, settings.enable_colorized_logging)
    import logging

    log = logging.getLogger("carrier")
    from .fd_limit import raise_open_files_limit

    raised = raise_open_files_limit()
    if raised is not None:
        log.info("open-file limit raised", extra={"soft_before": raised[0], "soft": raised[1]})
    for name in unknown_variables(os.environ):
        log.warning("unknown variable ignored (a typo?)", extra={"variable": name})
    if _early_signals:
        log.info(
            "signal received while starting: exiting",
            extra={"signal": signal.Signals(_early_signals[0]).name},
        )
        return 0
    try:
        return _run_loop(settings, probe)
    except ConfigError as exc:
        return _config_error(exc)
    except KeyboardInterrupt:
        return 130


def _run_loop(settings: Settings, probe: ProbeProcess) -> int:
    from .event_loop import run_event_loop
    from .lazy_ca import ca_file_hidden

    with ca_file_hidden():  # aiohttp's import-time TLS contexts, which the sidecar never uses
        from .app import run

    link = _hand_over_probe_port(settings, probe)
    return run_event_loop(run(settings, early_signals=_early_signals, probe_link=link))


def _hand_over_probe_port(settings: Settings, probe: ProbeProcess) -> ProbeLink | None:
    """Bind the probe port here (a taken port is a configuration error, exit 2) and give it to
    the probe process; None if no port is configured (the child has already been dismissed)."""
    if settings.http_bind is None:
        probe.dismiss()
        return None
    from .app import listen_error
    from .listen import listen_sockets
    from .probe_http import BACKLOG
    from .probe_link import ProbeLink
    from .probes import log_listening

    host, port = settings.http_bind
    try:
        sockets = listen_sockets(host, port)
    except OSError as exc:
        raise listen_error(settings, exc) from None
    for sock in sockets:
        sock.listen(BACKLOG)
    bound = log_listening(host, sockets)
    probe.hand_over(
        sockets,
        drain=settings.drain_token is not None,
        log_level=settings.log_level,
        colour=settings.enable_colorized_logging,
    )
    return ProbeLink(probe, bound)


def _config_error(exc: Exception) -> int:
    text = " ".join(str(exc).split())
    print(f"carrier-sidecar: {text}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
