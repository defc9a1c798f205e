"""docker-compose.yml: the local stack is wired right, checked without a Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from carrier_sidecar.settings import Settings, unknown_variables
from tests.support.servers import AWS_TEST_ENV, MotoServer

from .helm import ROOT


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_sidecar_env_is_a_valid_configuration(compose: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in compose["services"]["sidecar"]["environment"].items()}
    assert unknown_variables(env) == []
    settings = Settings.load(environ=env)
    assert settings.webhook_endpoint.startswith("http://worker:9000")
    assert settings.sqs_queue_name == env["QUEUE_NAME"]
    assert settings.sqs_endpoint == env["SQS_ENDPOINT"]


def test_services_are_wired(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"sqs", "queue", "worker", "sidecar"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert services["sidecar"]["build"]["dockerfile"] == "Dockerfile.sidecar"
    worker_script = services["worker"]["entrypoint"][1].removeprefix("/examples/")
    assert (ROOT / "examples" / worker_script).exists()
    for name, service in services.items():
        # No mounted fake ~/.aws: credentials are plain env.
        assert not any(".aws" in volume for volume in service.get("volumes", [])), name
        if name != "sqs":
            assert service["user"] == "65532:65532"
            assert service["read_only"] is True


@pytest.mark.parametrize("service", ["queue", "send"])
def test_helper_scripts_work_against_sqs(
    compose: dict[str, Any], moto: MotoServer, service: str
) -> None:
    """The `queue` and `send` one-shot scripts, run as-is against a real moto_server."""
    env = {**os.environ, **AWS_TEST_ENV, **compose["x-aws-env"]}
    env |= {"SQS_ENDPOINT": moto.endpoint, "QUEUE_NAME": "compose-check", "COUNT": "2"}
    for name in ("queue", service):
        script = compose["services"][name]["command"][0]
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "compose-check" in done.stdout
