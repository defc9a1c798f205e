"""The sidecar's end of the channel to its probe process (:mod:`.probe_process`).

In the event loop: sends the checks' outcomes every :data:`.probe_channel.STATE_EVERY` seconds
(which is also the child's sign that the loop runs) and answers what the child forwards
(``/metrics``, ``/drain``) with the same handlers the in-loop server uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from .probe_channel import STATE_EVERY, answer_frame, read_frame, request_of, state_frame
from .probe_checks import Outcome, evaluate, warn
from .probe_http import NOT_FOUND, Answer, Handler, server_error
from .probe_process import ProbeProcess


class ProbeProcessGone(Exception):
    """The probe process exited while the sidecar runs: nothing answers the kubelet any more."""


class ProbeLink:
    def __init__(self, process: ProbeProcess, port: int) -> None:
        self.process = process
        self.port = port
        self._writer: asyncio.StreamWriter | None = None
        self._answering: set[asyncio.Task[None]] = set()

    async def run(
        self, routes: Mapping[str, Handler], live: Callable[[], bool], ready: Callable[[], bool]
    ) -> None:
        """Until the child's end closes: then raises :class:`ProbeProcessGone`."""
        reader, self._writer = await asyncio.open_connection(sock=self.process.channel)
        pusher = asyncio.ensure_future(self._push(self._writer, live, ready))
        try:
            while (frame := await read_frame(reader)) is not None:
                head, _ = frame
                if head["k"] == "q":
                    self._answer(head, routes)
        finally:
            pusher.cancel()
        raise ProbeProcessGone(f"the probe process (pid {self.process.pid}) exited")

    async def close(self, grace: float) -> None:
        """Let answers in flight (a drain call) go out for ``grace`` seconds, then close the
        channel: the child stops listening and exits."""
        if self._answering:
            await asyncio.wait(set(self._answering), timeout=grace)
        for task in self._answering:
            task.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def _push(
        self, writer: asyncio.StreamWriter, live: Callable[[], bool], ready: Callable[[], bool]
    ) -> None:
        last: dict[str, Outcome] = {}
        while True:
            now = {
                name: evaluate(name, check) for name, check in (("live", live), ("ready", ready))
            }
            for name, outcome in now.items():
                if outcome != last.get(name):  # four times a second: warn on a change only
                    warn(name, outcome)
            last = now
            writer.write(state_frame(now["live"], now["ready"]))
            await asyncio.sleep(STATE_EVERY)

    def _answer(self, head: dict[str, Any], routes: Mapping[str, Handler]) -> None:
        task = asyncio.ensure_future(self._reply(int(head["id"]), head, routes))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _reply(self, ident: int, head: dict[str, Any], routes: Mapping[str, Handler]) -> None:
        handler = routes.get(head["path"])
        try:
            result = NOT_FOUND if handler is None else handler(request_of(head))
            reply = result if isinstance(result, Answer) else await result
        except Exception as exc:  # a handler's bug answers 500, as in the in-loop server
            reply = server_error(exc)
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(answer_frame(ident, reply))
