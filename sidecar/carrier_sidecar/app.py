"""Wires receive → transmit → acknowledge, and owns start-up and the shutdown sequence.

Shutdown, whatever the cause (SIGTERM/SIGINT/SIGHUP/SIGQUIT, the webhook going offline, ``stop`` set by a
caller, or ``GET /drain``) is one sequence in :func:`run`: stop receiving (receives already on
the wire land, then the loops are cancelled) → release held messages not yet POSTed (after a
drain call: deliver them, the worker is still serving) → wait for deliveries in flight up to
``CARRIER_SHUTDOWN_TIMEOUT`` → release those still running → flush
acknowledgements → close clients → exit code (after a drain: idle until the signal first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

from .acknowledger import Acknowledger
from .cloudevents import event_source
from .delivery import DeliveryEngine
from .drain import DRAIN_PATH, Drain, relay
from .failurelog import FailureLog
from .heartbeat import Heartbeat
from .liveness import Liveness
from .memory import settle
from .metrics import Metrics
from .probes import ProbeServer
from .receiver import receive_loop
from .settings import ConfigError, Settings, env_name
from .sqs import SqsPort
from .webhook_client import WebhookClient, open_session
from .webhook_health import WebhookHealthGate, WebhookOffline

log = logging.getLogger("carrier")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_WEBHOOK_OFFLINE = 3
LIVENESS_MARGIN = 30.0
RECEIVE_LANDING = 1.0  # a busy queue answers within a round trip; an empty one is not waited for
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    metrics: Metrics | None = None,
    handle_signals: bool = True,
    on_probe_port: Callable[[int], None] | None = None,
    early_signals: Sequence[int] = (),
) -> int:
    """Run until stopped; return the process exit code. Raises ConfigError before receiving."""
    stop = stop or asyncio.Event()
    metrics = metrics or Metrics()
    loop = asyncio.get_running_loop()
    port = SqsPort(settings, metrics)
    session = open_session(settings)
    gate = WebhookHealthGate(settings, session)
    liveness = Liveness(
        settings.sqs_receivers,
        stale_after=2 * settings.sqs_wait_time + 15 + LIVENESS_MARGIN,
    )
    state = {"draining": False}
    # ``stop`` = a signal (exit once done); ``halt`` = stop receiving (a signal, or a drain call).
    drain = Drain(settings.drain_token)
    halt = asyncio.Event()

    def ready() -> bool:
        return (
            port.resolved
            and port.health.healthy
            and gate.online
            and not state["draining"]
            and not halt.is_set()
        )

    probe = None
    bind = settings.http_bind
    if bind is not None:
        probe = ProbeServer(bind, metrics, liveness.live, ready)
        if drain.enabled:
            probe.add_route(DRAIN_PATH, drain.handle)
    signals = _SignalHandlers(loop, stop) if handle_signals else None
    if early_signals:  # caught by __main__ before this loop could handle signals
        stop.set()
    background: list[asyncio.Task[Any]] = [asyncio.ensure_future(relay(stop, drain, halt))]
    receivers: list[asyncio.Task[None]] = []
    exit_code = EXIT_OK
    try:
        await port.open()
        if probe is not None:
            try:
                await probe.start()
            except OSError as exc:
                raise ConfigError(
                    f"{env_name('http_addr')}: cannot listen on {settings.http_addr}: {exc.strerror}"
                ) from None
            if on_probe_port is not None:
                on_probe_port(probe.port)
        if not await _until_stopped(port.resolve(), halt):
            return await drain.settle(EXIT_OK, stop)
        log.info(
            "queue resolved",
            extra={
                "queue_url": port.queue_url,
                "visibility_timeout": port.visibility_timeout,
                "fifo": settings.is_fifo,
            },
        )
        if not await gate.wait_online(halt):
            return await drain.settle(EXIT_OK, stop)

        ack = Acknowledger(port, metrics)
        heartbeat = Heartbeat(ack, port.visibility_timeout, enabled=settings.sqs_heartbeat)
        source = event_source(port.queue_url, port.region, settings.queue_label)
        webhook_client = WebhookClient(settings, session, source=source)
        ack.lease_end = heartbeat.lease_end
        failures = FailureLog()
        engine = DeliveryEngine(settings, webhook_client, ack, heartbeat, metrics, failures)
        background.append(asyncio.ensure_future(ack.run()))
        background.append(asyncio.ensure_future(failures.run()))
        background.append(asyncio.ensure_future(heartbeat.run()))
        if settings.enable_stat_log:
            from .statlog import run_stat_log

            background.append(asyncio.ensure_future(run_stat_log(metrics, settings.stat_log_timer)))
        receivers = [
            asyncio.ensure_future(receive_loop(i, settings, port, engine, liveness))
            for i in range(settings.sqs_receivers)
        ]
        stopped = asyncio.ensure_future(halt.wait())
        watched: set[asyncio.Future[Any]] = {stopped, *receivers}
        if settings.webhook_health_check_endpoint is not None:
            watch = asyncio.ensure_future(gate.watch())
            background.append(watch)
            watched.add(watch)
        log.info(
            "receiving",
            extra={
                "receivers": settings.sqs_receivers,
                "workers_per_receiver": settings.sqs_receiver_workers,
                "batch_size": settings.sqs_batch_size,
                "webhook": settings.webhook_endpoint,
            },
        )
        settle()  # start-up is over: give its garbage back before the first long poll idles
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        exit_code = _exit_code(done - {stopped})

        # --- the shutdown sequence ------------------------------------------------------------
        state["draining"] = True
        # A preStop drain holds the worker's SIGTERM until it answers: the worker is serving,
        # so what is held is delivered rather than released (see DeliveryEngine.drain).
        deliver_held = drain.requested.is_set()
        await _let_receives_land(engine, liveness, deliver_held=deliver_held)
        for task in receivers:
            task.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
        log.info(
            "stopped receiving; draining",
            extra={
                "held": engine.held,
                "timeout": settings.shutdown_timeout,
                "delivering_held": deliver_held,
            },
        )
        await engine.drain(settings.shutdown_timeout)
        await ack.flush()
        log.info("shutdown complete", extra={"exit_code": exit_code})
        if not stop.is_set():  # drained by the preStop hook: nothing runs while idling
            _quiesce(background, liveness, settings.sqs_receivers)
        return await drain.settle(exit_code, stop)
    finally:
        drain.done.set()  # never leave a drain call waiting on the way out
        state["draining"] = True
        for task in receivers + background:
            task.cancel()
        await asyncio.gather(*receivers, *background, return_exceptions=True)
        if signals is not None:
            signals.remove()
        if probe is not None:
            await probe.stop()
        await session.close()
        await port.close()


async def _let_receives_land(
    engine: DeliveryEngine, liveness: Liveness, *, deliver_held: bool
) -> None:
    """Cancelling a ReceiveMessage that SQS has already answered loses the answer: its messages
    stay invisible for a whole visibility timeout and come back with one more receive count.
    So no new receive starts, and those on the wire get a moment to land (their messages are
    delivered or released with the rest); a long poll on an empty queue is cancelled after the
    bound."""
    engine.stop_receiving(deliver_held=deliver_held)
    await liveness.wait_idle(RECEIVE_LANDING)


def _quiesce(background: list[asyncio.Task[Any]], liveness: Liveness, receivers: int) -> None:
    """Idle after a drain: no health checks against a worker that is stopping, and /healthz
    stays true (the receive loops are gone on purpose, not stuck)."""
    for task in background:
        task.cancel()
    for loop in range(receivers):
        liveness.park(loop, True)


def _exit_code(finished: set[asyncio.Future[Any]]) -> int:
    for task in finished:
        exc = task.exception() if not task.cancelled() else None
        if isinstance(exc, WebhookOffline):
            log.error("webhook offline; releasing work and exiting", extra={"exit_code": 3})
            return EXIT_WEBHOOK_OFFLINE
        if exc is not None:
            log.error("a receive loop crashed", exc_info=exc)
            return EXIT_ERROR
    return EXIT_OK


async def _until_stopped(work: Any, stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` is set first (then cancel it and return False)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


class _SignalHandlers:
    """First SIGTERM/SIGINT/SIGHUP/SIGQUIT: graceful stop. Second: exit at once (128 + number).

    SIGHUP (a closed terminal, ``kill -HUP`` out of habit) and SIGQUIT (``kill -QUIT``, a
    container runtime's STOPSIGNAL) would otherwise kill the process silently, leaving the
    message in delivery invisible until its visibility ends.
    """

    SIGNALS = STOP_SIGNALS

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        self._loop = loop
        self._stop = stop
        for sig in self.SIGNALS:
            loop.add_signal_handler(sig, self._handle, sig)

    def _handle(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            log.warning("second signal: exiting at once", extra={"signal": sig.name})
            logging.shutdown()
            os._exit(128 + sig.value)
        log.info("signal received: shutting down", extra={"signal": sig.name})
        self._stop.set()

    def remove(self) -> None:
        for sig in self.SIGNALS:
            self._loop.remove_signal_handler(sig)
