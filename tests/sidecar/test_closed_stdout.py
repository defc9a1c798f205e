"""A closed stdout (``carrier-sidecar | head -1``) must not turn log lines into tracebacks."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from tests.support.queues import make_queue
from tests.support.servers import MotoServer, WebhookRecorder
from tests.support.sidecars import env_for, process_env


async def test_logging_to_a_closed_pipe_is_silent_and_the_drain_still_exits_0(
    moto: MotoServer,
    sqs: Any,
    webhook: WebhookRecorder,
    queue_name: str,
    sidecar_command: list[str],
) -> None:
    await make_queue(sqs, queue_name)
    env = process_env(env_for(moto, queue_name, webhook.url))
    proc = await asyncio.create_subprocess_exec(
        *sidecar_command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        for _ in range(200):  # start-up logs a handful of lines
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "stdout ended before the sidecar started receiving"
            if b'"receiving"' in line:
                break
        else:
            raise AssertionError("no 'receiving' line among the first 200")
        # Close our end of stdout, as `head -1` does once it has its line.
        transport = proc._transport  # type: ignore[attr-defined]
        transport.get_pipe_transport(1).close()
        proc.send_signal(signal.SIGTERM)  # the drain logs several lines into the closed pipe
        code = await asyncio.wait_for(proc.wait(), 20)
        stderr = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "Logging error" not in stderr, stderr
    assert "BrokenPipe" not in stderr, stderr
