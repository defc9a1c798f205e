"""Wires receive → deliver → acknowledge, and owns start-up and the shutdown sequence.

:func:`run` is the whole life of a sidecar: :meth:`Sidecar.start` (open SQS and the probe port,
resolve the queue, wait for the webhook, start the loops), :meth:`Sidecar.serve` (until a cause
to stop), :meth:`Sidecar.shut_down`, :meth:`Sidecar.close`.

Shutdown, whatever the cause (SIGTERM/SIGINT/SIGHUP/SIGQUIT, the webhook going offline, ``stop``
set by a caller, or ``GET /drain``) is one sequence: stop receiving (receives already on the
wire land, then the loops are cancelled) → release held messages not yet POSTed (after a drain
call: deliver them, the worker is still serving) → wait for deliveries in flight up to
``CARRIER_SHUTDOWN_TIMEOUT`` → release those still running → flush acknowledgements → close
clients → exit code (after a drain: idle until the signal first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from .probe_http import Handler
from .probe_link import ProbeLink, ProbeProcessGone
from .probes import SHUTDOWN_GRACE, ProbeServer, SharedRendering
from .receiver import receive_loop
from .settings import ConfigError, Settings, env_name
from .sqs import SqsPort
from .stop_signals import STOP_SIGNALS
from .webhook_client import WebhookClient, open_session
from .webhook_health import WebhookHealthGate, WebhookOffline

log = logging.getLogger("carrier")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_WEBHOOK_OFFLINE = 3
LIVENESS_MARGIN = 30.0
RECEIVE_LANDING = 1.0  # a busy queue answers within a round trip; an empty one is not waited for


async def run(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    metrics: Metrics | None = None,
    handle_signals: bool = True,
    on_probe_port: Callable[[int], None] | None = None,
    early_signals: Sequence[int] = (),
    probe_link: ProbeLink | None = None,
) -> int:
    """Run until stopped; return the process exit code. Raises ConfigError before receiving.

    With ``probe_link`` (the ``carrier-sidecar`` process) the probe port is served by the probe
    process at its other end; without it, by a :class:`.ProbeServer` in this loop."""
    sidecar = Sidecar(settings, stop or asyncio.Event(), metrics or Metrics(), probe_link)
    signals = _SignalHandlers(asyncio.get_running_loop(), sidecar.stop) if handle_signals else None
    if early_signals:  # caught by __main__ before this loop could handle signals
        sidecar.stop.set()
    try:
        flow = await sidecar.start(on_probe_port)
        if flow is None:  # stopped before the first receive
            return await sidecar.drain.settle(EXIT_OK, sidecar.stop)
        exit_code = await sidecar.serve()
        await sidecar.shut_down(flow)
        log.info("shutdown complete", extra={"exit_code": exit_code})
        return await sidecar.drain.settle(exit_code, sidecar.stop)
    finally:
        await sidecar.close()
        if signals is not None:
            signals.remove()


@dataclass(slots=True)
class Flow:
    """The receive → deliver → acknowledge parts, built once the queue and webhook are known."""

    ack: Acknowledger
    engine: DeliveryEngine


class Sidecar:
    """One sidecar's parts and its steps: :meth:`start`, :meth:`serve`, :meth:`shut_down`.

    ``stop`` is a signal (exit once done); ``halt`` is "stop receiving" (a signal, or a drain
    call, after which the process idles until its signal).
    """

    def __init__(
        self,
        settings: Settings,
        stop: asyncio.Event,
        metrics: Metrics,
        probe_link: ProbeLink | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.metrics = metrics
        self.port = SqsPort(settings, metrics)
        self.session = open_session(settings)
        self.gate = WebhookHealthGate(settings, self.session)
        self.liveness = Liveness(
            settings.sqs_receivers,
            stale_after=2 * settings.sqs_wait_time + 15 + LIVENESS_MARGIN,
        )
        self.drain = Drain(settings.drain_token)
        self.halt = asyncio.Event()
        self.draining = False
        self.background: list[asyncio.Task[Any]] = []
        self.receivers: list[asyncio.Task[None]] = []
        self.link_task: asyncio.Task[None] | None = None
        self.probe: ProbeServer | None = None
        self.probe_link = probe_link
        if settings.http_bind is not None and probe_link is None:
            self.probe = ProbeServer(settings.http_bind, metrics, self.liveness.live, self.ready)
            if self.drain.enabled:
                self.probe.add_route(DRAIN_PATH, self.drain.handle)

    def ready(self) -> bool:
        return (
            self.port.resolved
            and self.port.health.healthy
            and self.gate.online
            and not self.draining
            and not self.halt.is_set()
        )

    async def start(self, on_probe_port: Callable[[int], None] | None) -> Flow | None:
        """Open SQS and the probe port, resolve the queue, wait for the webhook, start the
        loops; None if stopped before that."""
        self.background.append(asyncio.ensure_future(relay(self.stop, self.drain, self.halt)))
        if self.probe_link is not None:  # already listening: it hears from this loop from now on
            self._link_probe_process(self.probe_link, on_probe_port)
        await self.port.open()
        await self._open_probe_port(on_probe_port)
        if not await _until_stopped(self.port.resolve(), self.halt):
            return None
        log.info(
            "queue resolved",
            extra={
                "queue_url": self.port.queue_url,
                "visibility_timeout": self.port.visibility_timeout,
                "fifo": self.settings.is_fifo,
            },
        )
        settle()  # what start-up builds is built; the webhook may keep us waiting a long time
        if not await self.gate.wait_online(self.halt):
            return None
        return self._start_flow()

    async def _open_probe_port(self, on_probe_port: Callable[[int], None] | None) -> None:
        if self.probe is None:
            return
        try:
            await self.probe.start()
        except OSError as exc:
            raise listen_error(self.settings, exc) from None
        if on_probe_port is not None:
            on_probe_port(self.probe.port)

    def _link_probe_process(
        self, link: ProbeLink, on_probe_port: Callable[[int], None] | None
    ) -> None:
        routes: dict[str, Handler] = {"/metrics": SharedRendering(self.metrics).serve}
        if self.drain.enabled:
            routes[DRAIN_PATH] = self.drain.handle
        # Not in self.background: it runs on while a drained sidecar idles (see _quiesce).
        self.link_task = asyncio.ensure_future(link.run(routes, self.liveness.live, self.ready))
        if on_probe_port is not None:
            on_probe_port(link.port)

    def _start_flow(self) -> Flow:
        settings, port = self.settings, self.port
        ack = Acknowledger(port, self.metrics)
        heartbeat = Heartbeat(ack, port.visibility_timeout, enabled=settings.sqs_heartbeat)
        source = event_source(port.queue_url, port.region, settings.queue_label)
        webhook_client = WebhookClient(settings, self.session, source=source)
        ack.lease_end = heartbeat.lease_end
        failures = FailureLog()
        engine = DeliveryEngine(settings, webhook_client, ack, heartbeat, self.metrics, failures)
        self.background += [
            asyncio.ensure_future(ack.run()),
            asyncio.ensure_future(failures.run()),
            asyncio.ensure_future(heartbeat.run()),
        ]
        if settings.enable_stat_log:
            from .statlog import run_stat_log

            self.background.append(
                asyncio.ensure_future(run_stat_log(self.metrics, settings.stat_log_timer))
            )
        self.receivers = [
            asyncio.ensure_future(receive_loop(i, settings, port, engine, self.liveness))
            for i in range(settings.sqs_receivers)
        ]
        log.info(
            "receiving",
            extra={
                "receivers": settings.sqs_receivers,
                "workers_per_receiver": settings.sqs_receiver_workers,
                "batch_size": settings.sqs_batch_size,
                "webhook": settings.webhook_endpoint,
            },
        )
        return Flow(ack, engine)

    async def serve(self) -> int:
        """Until a stop, a drain call, the webhook going offline or a receive loop crashing;
        returns the exit code that cause means."""
        stopped = asyncio.ensure_future(self.halt.wait())
        watched: set[asyncio.Future[Any]] = {stopped, *self.receivers}
        if self.link_task is not None:
            watched.add(self.link_task)
        if self.settings.webhook_health_check_endpoint is not None:
            watch = asyncio.ensure_future(self.gate.watch())
            self.background.append(watch)
            watched.add(watch)
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        return _exit_code(done - {stopped})

    async def shut_down(self, flow: Flow) -> None:
        """The shutdown sequence of the module docstring, up to the flushed acknowledgements."""
        self.draining = True
        # A preStop drain holds the worker's SIGTERM until it answers: the worker is serving,
        # so what is held is delivered rather than released (see DeliveryEngine.drain).
        deliver_held = self.drain.requested.is_set()
        await _let_receives_land(flow.engine, self.liveness, deliver_held=deliver_held)
        for task in self.receivers:
            task.cancel()
        await asyncio.gather(*self.receivers, return_exceptions=True)
        log.info(
            "stopped receiving; draining",
            extra={
                "held": flow.engine.held,
                "timeout": self.settings.shutdown_timeout,
                "delivering_held": deliver_held,
            },
        )
        await flow.engine.drain(self.settings.shutdown_timeout)
        await flow.ack.flush()
        if not self.stop.is_set():  # drained by the preStop hook: nothing runs while idling
            _quiesce(self.background, self.liveness, self.settings.sqs_receivers)

    async def close(self) -> None:
        """Whatever happened: answer drain calls, cancel every loop, close ports and clients."""
        self.drain.done.set()  # never leave a drain call waiting on the way out
        self.draining = True
        if self.probe_link is not None:  # the drain answers go out, then the child exits
            await self.probe_link.close(SHUTDOWN_GRACE)
        tasks = self.receivers + self.background + ([self.link_task] if self.link_task else [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.probe is not None:
            await self.probe.stop()
        await self.session.close()
        await self.port.close()


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


def listen_error(settings: Settings, exc: OSError) -> ConfigError:
    """The probe port cannot be bound: a configuration error, named by its variable."""
    return ConfigError(
        f"{env_name('http_addr')}: cannot listen on {settings.http_addr}: {exc.strerror}"
    )


def _exit_code(finished: set[asyncio.Future[Any]]) -> int:
    for task in finished:
        exc = task.exception() if not task.cancelled() else None
        if isinstance(exc, ProbeProcessGone):
            log.error("probe port lost: exiting", extra={"error": str(exc), "exit_code": 1})
            return EXIT_ERROR
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
