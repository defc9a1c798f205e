"""``carrier-operator`` as a process: bad config exits 2 with one line; SIGTERM exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from carrier_operator.__main__ import load_config
from carrier_operator.config import OperatorConfigError, OperatorSettings
from carrier_sidecar.listen import listen_sockets
from tests.operator.conftest import NAMESPACE
from tests.support.kube import BINDINGS, FakeKube, OperatorHandle, binding_object, condition
from tests.support.servers import MotoServer, eventually, free_port

pytestmark = pytest.mark.slow  # real servers or processes

SCRIPT = str(Path(sys.executable).parent / "carrier-operator")


async def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        SCRIPT,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize(
    ("args", "env", "variable"),
    [
        (["--liveness-port", "0"], {}, "CARRIER_OPERATOR_LIVENESS_PORT"),
        ([], {"CARRIER_OPERATOR_LOG_FORMAT": "xml"}, "CARRIER_OPERATOR_LOG_FORMAT"),
        (
            [],
            {"CARRIER_OPERATOR_QUEUE_CHECK_INTERVAL": "-1"},
            "CARRIER_OPERATOR_QUEUE_CHECK_INTERVAL",
        ),
    ],
)
async def test_bad_config_is_one_line_and_exit_2(
    args: list[str], env: dict[str, str], variable: str
) -> None:
    code, err = await _run(args, env)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"carrier-operator: {variable}: ")
    assert "Traceback" not in err


async def test_a_busy_liveness_port_is_one_line_and_exit_2() -> None:
    (busy,) = listen_sockets("", 0)  # the same family (or both) the operator will want
    with busy:
        busy.listen()
        port = busy.getsockname()[1]
        code, err = await _run(["--liveness-port", str(port)], {})
    assert code == 2, err
    assert err.strip().splitlines() == [
        f"carrier-operator: CARRIER_OPERATOR_LIVENESS_PORT: cannot listen on :{port}: "
        "Address already in use"
    ]


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_OPERATOR_NAMESPACES", "a, b")
    monkeypatch.setenv("CARRIER_OPERATOR_LEADER_ELECTION", "true")
    config = load_config(
        ["--namespaces", "team-a", "--no-leader-election", "--queue-check-interval", "5"]
    )
    assert config.namespace_list == ["team-a"]
    assert config.leader_election is False
    assert load_config([]).leader_election is True
    assert config.queue_check_interval == 5
    assert load_config([]).namespace_list == ["a", "b"]
    with pytest.raises(OperatorConfigError, match="CARRIER_OPERATOR_WEBHOOK_PORT"):
        load_config(["--webhook-port", "70000"])


async def test_liveness_endpoint_answers(
    operator: OperatorHandle, operator_config: OperatorSettings
) -> None:
    url = f"http://127.0.0.1:{operator_config.liveness_port}/healthz"
    answers: list[dict[str, Any]] = []

    async def probe() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                if response.status == 200:
                    answers.append(json.loads(await response.text()))
        except aiohttp.ClientConnectionError:
            return False  # kopf starts the health reporter just after "ready"
        return bool(answers)

    await eventually(probe, 10, "/healthz")
    assert answers[0]["bindings"] == 0
    assert answers[0]["leader"] is True, "a sole replica is always the writer"


async def test_process_reconciles_then_stops_cleanly_on_sigterm(
    kube: FakeKube, moto: MotoServer, sqs: Any, queue_name: str
) -> None:
    await sqs.create_queue(QueueName=queue_name)
    liveness = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kube.kubeconfig),
        "CARRIER_OPERATOR_LIVENESS_PORT": str(liveness),
        "CARRIER_OPERATOR_WEBHOOK_PORT": str(free_port()),
        "CARRIER_OPERATOR_QUEUE_CHECK_INTERVAL": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        SCRIPT,
        "--log-format",
        "json",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        spec = {
            "queue": {"name": queue_name, "region": "us-east-1", "endpoint": moto.endpoint},
            "webhook": {"port": 8080},
        }
        await kube.create(BINDINGS, binding_object(NAMESPACE, "orders", spec))
        try:
            await eventually(
                lambda: (
                    condition(kube.status(BINDINGS, NAMESPACE, "orders"), "Ready").get("status")
                    == "True"
                ),
                30,
                "Ready from the process",
            )
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
            pytest.fail(f"not Ready; operator stderr:\n{err.decode()[-3000:]}")
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        first = err.decode().splitlines()[0]
        assert json.loads(first)["message"], "JSON log lines"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
